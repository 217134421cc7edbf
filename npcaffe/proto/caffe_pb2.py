"""Caffe's protobuf messages, built at import time from ``caffe.desc``.

This stands in for the ``caffe_pb2`` module that protoc would generate from
``caffe.proto``. Instead of generated code (which is tied to the protobuf
release that produced it) it loads the checked-in binary descriptor
``caffe.desc`` (see ``build.py``) into a private descriptor pool and makes
the message classes with ``google.protobuf.message_factory``. It works with
any protobuf runtime from 4.21 on (pure-Python, C++ or upb backend).

The module looks like generated code::

    from npcaffe.proto import caffe_pb2
    net = caffe_pb2.NetParameter()
    caffe_pb2.TRAIN, caffe_pb2.TEST            # top-level enum values
    caffe_pb2.Phase.Name(1)                    # 'TEST'
    caffe_pb2.PoolingParameter.MAX             # nested enum values
    caffe_pb2.PoolingParameter.PoolMethod      # nested enum wrapper
    caffe_pb2.DESCRIPTOR                       # the FileDescriptor

The pool is private, so this module never clashes with another
``caffe.proto`` (e.g. a real pycaffe) loaded into the default pool.
"""

from __future__ import annotations

from pathlib import Path

from google.protobuf import descriptor_pb2
from google.protobuf import descriptor_pool
from google.protobuf import message_factory
from google.protobuf.internal import enum_type_wrapper

_DESC_PATH = Path(__file__).resolve().with_name("caffe.desc")


def _read_descriptor_set() -> bytes:
    try:  # works inside zips/wheels as well as on disk
        from importlib import resources

        return resources.files(__package__).joinpath("caffe.desc").read_bytes()
    except Exception:  # pragma: no cover - fallback for unusual loaders
        return _DESC_PATH.read_bytes()


def _load_file_descriptor():
    fds = descriptor_pb2.FileDescriptorSet.FromString(_read_descriptor_set())
    if len(fds.file) != 1:
        raise ImportError(
            f"caffe.desc should hold exactly one file, found {len(fds.file)}"
        )
    file_proto = fds.file[0]
    pool = descriptor_pool.DescriptorPool()
    pool.AddSerializedFile(file_proto.SerializeToString())
    return pool, pool.FindFileByName(file_proto.name)


def _message_class(pool, descriptor):
    get = getattr(message_factory, "GetMessageClass", None)
    if get is not None:  # protobuf >= 4.22
        return get(descriptor)
    return message_factory.MessageFactory(pool).GetPrototype(descriptor)


_POOL, DESCRIPTOR = _load_file_descriptor()

__all__ = ["DESCRIPTOR"]

for _name, _enum in DESCRIPTOR.enum_types_by_name.items():
    globals()[_name] = enum_type_wrapper.EnumTypeWrapper(_enum)
    __all__.append(_name)
    for _value in _enum.values:
        globals()[_value.name] = _value.number
        __all__.append(_value.name)

for _name, _msg in DESCRIPTOR.message_types_by_name.items():
    _cls = _message_class(_POOL, _msg)
    # Generated classes carry their enums as class attributes (e.g.
    # PoolingParameter.MAX, PoolingParameter.PoolMethod); message_factory
    # already does this on current runtimes, this covers any that do not.
    for _enum in _msg.enum_types:
        if not hasattr(_cls, _enum.name):
            setattr(_cls, _enum.name, enum_type_wrapper.EnumTypeWrapper(_enum))
        for _value in _enum.values:
            if not hasattr(_cls, _value.name):
                setattr(_cls, _value.name, _value.number)
    try:  # lets pickle and repr find the class here, as with generated code
        _cls.__module__ = __name__
    except (AttributeError, TypeError):  # pragma: no cover - immutable type
        pass
    globals()[_name] = _cls
    __all__.append(_name)

del _name, _enum, _value, _msg, _cls
