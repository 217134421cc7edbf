"""Net generators: the FCN family as train/val/deploy/solver prototxts.

Command line: ``python -m nets fcn8s --classes 21 --sbd-dir SBD --voc-dir VOC --out DIR``
(``python -m nets --help`` describes the variants and data options). In Python::

    from nets import fcn, solver, generate, data_sources
    net = fcn('fcn8s', num_classes=21)        # the deploy NetParameter
    print(net)                                # prototxt text
"""
from .fcn import (VARIANTS, DataLayer, NetsError, Variant, data_sources, fcn, folder_data,
                  generate, sbd_data, solver, voc_data)

__all__ = ['VARIANTS', 'DataLayer', 'NetsError', 'Variant', 'data_sources', 'fcn',
           'folder_data', 'generate', 'sbd_data', 'solver', 'voc_data']
from . import datasets  # noqa: E402,F401  (registers the SIFT Flow, NYUDv2, PASCAL-Context variants)
