"""Segment images: ``python infer.py --deploy D.prototxt --weights W.caffemodel --out DIR
IMAGES...`` (the same as ``fcn infer``; the code is ``fcn.segment``)."""
import sys

from fcn.segment import main

if __name__ == '__main__':
    sys.exit(main())
