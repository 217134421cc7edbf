"""``python -m nets``: see nets.cli."""
import sys

from nets.cli import main

sys.exit(main())
