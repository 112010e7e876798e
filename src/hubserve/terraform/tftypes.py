"""What the ``tf`` package lacks and the provider needs: single nested blocks and object values.

``tf`` 1.2.0 implements set-nested blocks only (its single-block class is commented out) and no
object type. Both are its documented extension points (``tf.schema.NestedBlock``, ``tf.types.TfType``),
filled in here; the wire format is the plugin protocol's (msgpack maps for blocks and objects).
"""

from __future__ import annotations

import json
from typing import Any

from tf.schema import Attribute, Block, NestedBlock, NestMode
from tf.types import TfType, Unknown


class SingleBlock(NestedBlock):
    """A block written at most once (``model { ... }``): its value is a dict of its fields, or None."""

    def __init__(self, type_name: str, block: Block, required: bool = False) -> None:
        bounds = {"min_items": 1, "max_items": 1} if required else {}
        super().__init__(type_name, NestMode.Single, block, **bounds)

    def encode(self, value: Any) -> Any:
        if value is None or value is Unknown:
            return value
        return _convert(self, value, "encode")

    def decode(self, value: Any) -> Any:
        if value is None or value is Unknown:
            return value
        return _convert(self, value, "decode")

    def semantically_equal(self, a_decoded: Any, b_decoded: Any) -> bool:
        return bool(a_decoded == b_decoded)


def _convert(block: NestedBlock, value: dict[str, Any], how: str) -> dict[str, Any]:
    out: dict[str, Any] = {}
    attributes: dict[str, Attribute] = {a.name: a for a in block.block.attributes}
    blocks: dict[str, NestedBlock] = {b.type_name: b for b in block.block.block_types}
    for name, attribute in attributes.items():
        item = value.get(name)
        out[name] = item if item is None or item is Unknown else getattr(attribute.type, how)(item)
    for name, nested in blocks.items():
        out[name] = getattr(nested, how)(value.get(name))
    return out


class Object(TfType):
    """An object value with fixed attribute types (the elements of ``hubserve_endpoints.endpoints``)."""

    def __init__(self, attribute_types: dict[str, TfType]) -> None:
        self.attribute_types = attribute_types

    def encode(self, value: Any) -> Any:
        if value is None or value is Unknown:
            return value
        return {name: kind.encode(value.get(name)) for name, kind in self.attribute_types.items()}

    def decode(self, value: Any) -> Any:
        if value is None or value is Unknown:
            return value
        return {name: kind.decode(value.get(name)) for name, kind in self.attribute_types.items()}

    def tf_type(self) -> bytes:
        shapes = {name: json.loads(kind.tf_type()) for name, kind in self.attribute_types.items()}
        return json.dumps(["object", shapes], separators=(",", ":")).encode()
