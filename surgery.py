"""Weight surgery: ``python surgery.py --classifier-deploy ... --classifier-weights ... --fcn
TRAIN.prototxt --out W.caffemodel`` (the same as ``fcn surgery``; the code is ``fcn.surgery``)."""
import sys

from fcn.surgery import main

if __name__ == '__main__':
    sys.exit(main())
