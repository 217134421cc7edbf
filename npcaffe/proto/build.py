"""Compile ``caffe.proto`` into the checked-in descriptor ``caffe.desc``.

``caffe.desc`` is a binary ``FileDescriptorSet`` holding the one file
``caffe.proto``. ``caffe_pb2.py`` loads it at import time, so npcaffe needs
only the protobuf runtime, never ``protoc`` or generated code tied to one
protobuf version.

Run this after every edit of ``caffe.proto`` (dev-time only)::

    pip install grpcio-tools        # provides grpc_tools.protoc; not a runtime dep
    python -m npcaffe.proto.build   # or: python npcaffe/proto/build.py

and commit the regenerated ``caffe.desc``. ``tests/test_proto.py`` fails if
the descriptor no longer matches the ``.proto`` text.
"""

from __future__ import annotations

import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
PROTO = HERE / "caffe.proto"
DESC = HERE / "caffe.desc"


def build(proto: Path = PROTO, desc: Path = DESC) -> Path:
    """Run protoc on ``proto`` and write the FileDescriptorSet to ``desc``."""
    try:
        from grpc_tools import protoc
    except ImportError as exc:  # pragma: no cover - dev tool only
        raise SystemExit(
            "grpc_tools is missing: `pip install grpcio-tools` to rebuild caffe.desc"
        ) from exc

    args = [
        "protoc",
        f"--proto_path={proto.parent}",
        f"--descriptor_set_out={desc}",
        proto.name,
    ]
    rc = protoc.main(args)
    if rc != 0:
        raise SystemExit(f"protoc failed with exit code {rc}")
    return desc


def main() -> int:
    out = build()
    print(f"wrote {out} ({out.stat().st_size} bytes)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
