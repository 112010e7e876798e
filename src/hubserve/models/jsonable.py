"""Turn whatever a pipeline or a user handler returns into plain JSON-able Python.

Pipelines hand back numpy scalars (token-classification scores), tensors and tuples;
the wire format (msgspec JSON) and the async store want lists, dicts and Python numbers.
"""

from __future__ import annotations

from typing import Any

_PLAIN = (str, int, float, bool, type(None))


def to_jsonable(value: Any) -> Any:
    """Recursively convert numpy/torch values, tuples and sets into JSON-able Python."""
    if isinstance(value, _PLAIN):
        return value
    if isinstance(value, dict):
        return {str(key): to_jsonable(item) for key, item in value.items()}
    if isinstance(value, (list, tuple, set, frozenset)):
        return [to_jsonable(item) for item in value]
    if hasattr(value, "detach") and hasattr(value, "tolist"):  # torch.Tensor
        tensor = value.detach().cpu()
        if tensor.is_floating_point():
            tensor = tensor.float()  # bfloat16 has no numpy or list form of its own
        return tensor.tolist()
    if hasattr(value, "tolist"):  # numpy arrays and scalars
        return to_jsonable(value.tolist())
    if hasattr(value, "item"):
        return value.item()
    if isinstance(getattr(value, "value", None), _PLAIN):  # enums
        return value.value
    return str(value)
