"""``python -m npcaffe.onnx NET WEIGHTS OUT [--input-shape N,C,H,W] [--dynamic]``."""
import sys

from npcaffe.onnx.cli import main

sys.exit(main())
