"""The array module the engine computes with, kept behind one name.

Every engine module does ``from npcaffe.arraymod import xp`` and uses ``xp.`` where it would
use ``np.``, so that a GPU array library with NumPy's interface (CuPy) can stand in later by
changing this one file. Today it is NumPy.
"""
import numpy as xp  # noqa: F401

__all__ = ['xp']
