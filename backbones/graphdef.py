"""Read a frozen TensorFlow GraphDef (.pb) with protobuf alone, without TensorFlow.

The few message types a frozen inference graph uses (GraphDef, NodeDef, AttrValue, TensorProto,
TensorShapeProto) are declared here at run time from their published field numbers
(tensorflow/core/framework/*.proto), so the only dependency is the ``protobuf`` package.
Fields we do not declare (versions, function library, …) are skipped by the parser.

``read_graph(path_or_bytes) -> list[GraphNode]`` gives each node's name, op, inputs and decoded
attributes; Const tensors come back as numpy arrays.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from google.protobuf import descriptor_pb2, descriptor_pool, message_factory
from google.protobuf.message import DecodeError

from posestream_common.errors import WeightsError

_PACKAGE = "posestream_tf"
_F = descriptor_pb2.FieldDescriptorProto

# TensorFlow DataType enum values we can decode (tensorflow/core/framework/types.proto).
_DTYPES: dict[int, np.dtype] = {
    1: np.dtype("<f4"), 2: np.dtype("<f8"), 3: np.dtype("<i4"), 4: np.dtype("u1"),
    5: np.dtype("<i2"), 6: np.dtype("i1"), 9: np.dtype("<i8"), 10: np.dtype("?"),
    19: np.dtype("<f2"),
}
# TensorProto field holding the values of each dtype when tensor_content is empty.
_VALUE_FIELDS = {1: "float_val", 2: "double_val", 3: "int_val", 4: "int_val", 5: "int_val",
                 6: "int_val", 9: "int64_val", 10: "bool_val", 19: "half_val"}


def _add_field(message, name, number, kind, *, repeated=False, type_name=None, packed=False):
    fld = message.field.add(name=name, number=number, type=kind,
                            label=_F.LABEL_REPEATED if repeated else _F.LABEL_OPTIONAL)
    if type_name:
        fld.type_name = f".{_PACKAGE}.{type_name}"
    if packed:
        fld.options.packed = True


def _file_descriptor() -> descriptor_pb2.FileDescriptorProto:
    """The subset of TensorFlow's graph protos that a frozen graph needs, as one proto3 file."""
    proto = descriptor_pb2.FileDescriptorProto(name="posestream_tf_graph.proto", package=_PACKAGE,
                                               syntax="proto3")
    dim = proto.message_type.add(name="TensorShapeDim")
    _add_field(dim, "size", 1, _F.TYPE_INT64)
    _add_field(dim, "name", 2, _F.TYPE_STRING)

    shape = proto.message_type.add(name="TensorShapeProto")
    _add_field(shape, "dim", 2, _F.TYPE_MESSAGE, repeated=True, type_name="TensorShapeDim")
    _add_field(shape, "unknown_rank", 3, _F.TYPE_BOOL)

    tensor = proto.message_type.add(name="TensorProto")
    _add_field(tensor, "dtype", 1, _F.TYPE_INT32)
    _add_field(tensor, "tensor_shape", 2, _F.TYPE_MESSAGE, type_name="TensorShapeProto")
    _add_field(tensor, "version_number", 3, _F.TYPE_INT32)
    _add_field(tensor, "tensor_content", 4, _F.TYPE_BYTES)
    _add_field(tensor, "float_val", 5, _F.TYPE_FLOAT, repeated=True, packed=True)
    _add_field(tensor, "double_val", 6, _F.TYPE_DOUBLE, repeated=True, packed=True)
    _add_field(tensor, "int_val", 7, _F.TYPE_INT32, repeated=True, packed=True)
    _add_field(tensor, "string_val", 8, _F.TYPE_BYTES, repeated=True)
    _add_field(tensor, "int64_val", 10, _F.TYPE_INT64, repeated=True, packed=True)
    _add_field(tensor, "bool_val", 11, _F.TYPE_BOOL, repeated=True, packed=True)
    _add_field(tensor, "half_val", 13, _F.TYPE_INT32, repeated=True, packed=True)

    values = proto.message_type.add(name="AttrListValue")
    _add_field(values, "s", 2, _F.TYPE_BYTES, repeated=True)
    _add_field(values, "i", 3, _F.TYPE_INT64, repeated=True, packed=True)
    _add_field(values, "f", 4, _F.TYPE_FLOAT, repeated=True, packed=True)
    _add_field(values, "b", 5, _F.TYPE_BOOL, repeated=True, packed=True)
    _add_field(values, "type", 6, _F.TYPE_INT32, repeated=True, packed=True)
    _add_field(values, "shape", 7, _F.TYPE_MESSAGE, repeated=True, type_name="TensorShapeProto")
    _add_field(values, "tensor", 8, _F.TYPE_MESSAGE, repeated=True, type_name="TensorProto")

    attr = proto.message_type.add(name="AttrValue")
    _add_field(attr, "list", 1, _F.TYPE_MESSAGE, type_name="AttrListValue")
    _add_field(attr, "s", 2, _F.TYPE_BYTES)
    _add_field(attr, "i", 3, _F.TYPE_INT64)
    _add_field(attr, "f", 4, _F.TYPE_FLOAT)
    _add_field(attr, "b", 5, _F.TYPE_BOOL)
    _add_field(attr, "type", 6, _F.TYPE_INT32)
    _add_field(attr, "shape", 7, _F.TYPE_MESSAGE, type_name="TensorShapeProto")
    _add_field(attr, "tensor", 8, _F.TYPE_MESSAGE, type_name="TensorProto")
    _add_field(attr, "placeholder", 9, _F.TYPE_STRING)
    attr.oneof_decl.add(name="value")
    for fld in attr.field:
        fld.oneof_index = 0

    node = proto.message_type.add(name="NodeDef")
    _add_field(node, "name", 1, _F.TYPE_STRING)
    _add_field(node, "op", 2, _F.TYPE_STRING)
    _add_field(node, "input", 3, _F.TYPE_STRING, repeated=True)
    _add_field(node, "device", 4, _F.TYPE_STRING)
    _add_field(node, "attr", 5, _F.TYPE_MESSAGE, repeated=True, type_name="NodeDef.AttrEntry")
    entry = node.nested_type.add(name="AttrEntry")
    entry.options.map_entry = True
    _add_field(entry, "key", 1, _F.TYPE_STRING)
    _add_field(entry, "value", 2, _F.TYPE_MESSAGE, type_name="AttrValue")

    graph = proto.message_type.add(name="GraphDef")
    _add_field(graph, "node", 1, _F.TYPE_MESSAGE, repeated=True, type_name="NodeDef")
    return proto


def _graph_def_class():
    pool = descriptor_pool.DescriptorPool()
    pool.Add(_file_descriptor())
    descriptor = pool.FindMessageTypeByName(f"{_PACKAGE}.GraphDef")
    get_class = getattr(message_factory, "GetMessageClass", None)
    if get_class is not None:
        return get_class(descriptor)
    return message_factory.MessageFactory(pool).GetPrototype(descriptor)  # protobuf < 4.22


_GRAPH_DEF = _graph_def_class()


@dataclass(frozen=True)
class GraphNode:
    """One NodeDef: ``attrs`` holds plain Python values; a Const's ``value`` is a numpy array."""

    name: str
    op: str
    inputs: tuple[str, ...]
    attrs: dict[str, Any] = field(default_factory=dict)

    @property
    def value(self) -> np.ndarray:
        return self.attrs["value"]


def tensor_to_array(tensor) -> np.ndarray:
    """Decode a TensorProto message into a numpy array (row-major, TensorFlow's own layout)."""
    if tensor.dtype not in _DTYPES:
        raise WeightsError(f"unsupported TensorFlow dtype {tensor.dtype} in graph constant")
    dtype = _DTYPES[tensor.dtype]
    shape = tuple(int(d.size) for d in tensor.tensor_shape.dim)
    count = int(np.prod(shape, dtype=np.int64))
    if tensor.tensor_content:
        array = np.frombuffer(tensor.tensor_content, dtype=dtype).copy()
    else:
        values = list(getattr(tensor, _VALUE_FIELDS[tensor.dtype]))
        if tensor.dtype == 19:   # half_val holds the raw 16-bit patterns
            array = np.asarray(values, np.uint16).view(np.float16)
        else:
            array = np.asarray(values, dtype=dtype)
        if array.size == 1 and count > 1:   # TensorFlow's splat encoding of a filled tensor
            array = np.full(count, array[0], dtype=dtype)
    if array.size != count:
        raise WeightsError(f"graph constant holds {array.size} values for shape {shape}")
    return array.reshape(shape)


def _attr_to_python(attr) -> Any:
    kind = attr.WhichOneof("value")
    if kind == "tensor":
        return tensor_to_array(attr.tensor)
    if kind == "shape":
        return tuple(int(d.size) for d in attr.shape.dim)
    if kind == "s":
        return attr.s.decode("utf-8", "replace")
    if kind == "list":
        items = attr.list
        if items.s:
            return [s.decode("utf-8", "replace") for s in items.s]
        for name in ("i", "f", "b", "type"):
            if len(getattr(items, name)):
                return list(getattr(items, name))
        return []
    return getattr(attr, kind) if kind else None


def read_graph(source: str | Path | bytes) -> list[GraphNode]:
    """Parse a frozen GraphDef from a file path or its bytes; WeightsError if it is not one."""
    data = Path(source).read_bytes() if isinstance(source, (str, Path)) else bytes(source)
    graph = _GRAPH_DEF()
    try:
        graph.ParseFromString(data)
    except DecodeError as exc:
        raise WeightsError(f"truncated file or not a TensorFlow GraphDef "
                           f"(protobuf: {exc})") from exc
    if not graph.node:
        raise WeightsError("TensorFlow GraphDef has no nodes")
    return [GraphNode(name=node.name, op=node.op, inputs=tuple(node.input),
                      attrs={key: _attr_to_python(value) for key, value in node.attr.items()})
            for node in graph.node]
