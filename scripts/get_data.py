"""Download the reference recipe's data: ``python scripts/get_data.py [--data data] ...`` (the
same as ``fcn get-data``; the code is ``fcn.downloads``)."""
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))   # a checkout without install
from fcn.downloads import main  # noqa: E402

if __name__ == '__main__':
    sys.exit(main())
