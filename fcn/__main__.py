"""``python -m fcn VERB ...``: see fcn.cli."""
import sys

from fcn.cli import main

sys.exit(main())
