"""Caffe's protobuf schema.

``caffe.proto`` is the schema (wire-compatible with BVLC Caffe master),
``caffe.desc`` its compiled descriptor (regenerate with ``build.py``) and
``caffe_pb2`` the message classes built from it at import time.
"""
