"""``python -m npcaffe``: the ``npcaffe`` command (see :mod:`npcaffe.cli.main`)."""
import sys

from npcaffe.cli.main import main

sys.exit(main())
