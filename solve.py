"""Train an FCN: ``python solve.py --solver S.prototxt [--weights W.caffemodel] ...``
(the same as ``fcn solve``; the code is ``fcn.train``). ``python solve.py --demo`` runs the
no-download demo."""
import sys

from fcn.cli import solve_main

if __name__ == '__main__':
    sys.exit(solve_main())
