"""Normalised specs and their field-by-field differences.

Both sides are compared as ``EndpointSpec`` dumps (every default filled), so a file that leaves
a field out and a live endpoint that holds its default agree. One exception: a spec without
``model.task`` lets the server infer it, so the live endpoint's inferred task counts as equal.
Secrets compare by name only: the server never shows their values, and a plan never prints them.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from hubserve.spec import REDACTED, EndpointSpec

UNSET = object()  # a field present on one side only (say after a serverless -> dedicated switch)


@dataclass(frozen=True)
class FieldChange:
    """One leaf field that differs: ``path`` is dotted (``compute.memory_mb``)."""

    path: str
    old: Any
    new: Any

    def describe(self) -> str:
        return f"{self.path}: {_show(self.old)} -> {_show(self.new)}"

    def to_json(self) -> dict[str, Any]:
        return {"field": self.path, "from": None if self.old is UNSET else self.old,
                "to": None if self.new is UNSET else self.new}  # fmt: skip


def normalise(spec: EndpointSpec | dict[str, Any]) -> dict[str, Any]:
    """The spec with every default filled; a live description's observed fields are dropped."""
    if isinstance(spec, dict):
        spec = EndpointSpec.model_validate({key: value for key, value in spec.items() if key in EndpointSpec.model_fields})
    return spec.model_dump(mode="json")


def compact(spec: dict[str, Any]) -> dict[str, Any]:
    """A normalised spec without nulls and empty mappings: what export writes (defaults come back on load)."""
    out: dict[str, Any] = {}
    for key, value in spec.items():
        if isinstance(value, dict):
            value = compact(value)
            if not value and key != "env":
                continue
        if value is None:
            continue
        out[key] = value
    return out


def desired_against(desired: dict[str, Any], live: dict[str, Any]) -> dict[str, Any]:
    """``desired`` with what the server infers from the same source filled in: the task when it names none,
    and the framework (sklearn for a scikit-learn folder) when it leaves the default."""
    model, live_model = desired.get("model") or {}, live.get("model") or {}
    if model.get("source") != live_model.get("source"):
        return desired
    filled = dict(model)
    if model.get("task") is None and live_model.get("task"):
        filled["task"] = live_model["task"]
    if model.get("framework", "pytorch") == "pytorch" and live_model.get("framework") == "sklearn":
        filled["framework"] = "sklearn"
    return {**desired, "model": filled} if filled != model else desired


def diff(live: dict[str, Any], desired: dict[str, Any]) -> list[FieldChange]:
    """The leaf fields that differ between two normalised specs, in a stable order."""
    old, new = _flatten(live), _flatten(desired)
    changes = []
    for path in sorted(set(old) | set(new), key=_order):
        before, after = old.get(path, UNSET), new.get(path, UNSET)
        if before != after:
            changes.append(FieldChange(path, before, after))
    return changes


_TOP = ("name", "model", "compute", "batching", "env", "secrets", "custom_code", "async_inference")


def _order(path: str) -> tuple[int, str]:
    head = path.split(".", 1)[0]
    return (_TOP.index(head) if head in _TOP else len(_TOP), path)


def _flatten(value: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    flat: dict[str, Any] = {}
    for key, item in value.items():
        path = f"{prefix}{key}"
        if isinstance(item, dict) and item:
            flat.update(_flatten(item, path + "."))
        elif isinstance(item, dict):
            continue  # an empty mapping holds no field (env: {})
        else:
            flat[path] = REDACTED if path.startswith("secrets.") else item  # names only, never values
    return flat


def _show(value: Any) -> str:
    if value is UNSET:
        return "(unset)"
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)
