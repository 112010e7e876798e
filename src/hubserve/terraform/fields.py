"""The endpoint spec as Terraform sees it: attributes and blocks, and the conversions both ways.

The fields come from the spec's own pydantic models (``hubserve.spec``), so a field added there
reaches the provider's schema, ``hubserve export --format terraform`` and the conversions with
no change here. ``compute`` is the one exception: its two kinds become two blocks, ``serverless``
and ``dedicated``, as a user writes them.

A null attribute means "the server's default". Terraform keeps what the configuration says, so
the state read back from the server is compacted the same way: a value that is the default and
that the configuration left out stays null, and anything else is shown, so a change made with
the CLI appears in the next plan. No import of ``tf`` here: export uses this without the extra.
"""

from __future__ import annotations

import hashlib
import json
import types
import typing
from dataclasses import dataclass
from typing import Any, Literal

from pydantic import BaseModel

from hubserve.spec import REDACTED, DedicatedCompute, EndpointSpec, ServerlessCompute

Kind = Literal["string", "number", "bool", "map", "list"]
COMPUTE_BLOCKS: dict[str, type[BaseModel]] = {"serverless": ServerlessCompute, "dedicated": DedicatedCompute}
# Fields the server fills in when the configuration leaves them null (the task and framework it infers, the
# version `registry://group/latest-approved` resolves to): null in the configuration keeps them null in the state.
SERVER_FILLED = frozenset({"model.task", "model.revision", "model.framework"})


@dataclass(frozen=True)
class Leaf:
    """One attribute: ``path`` is dotted from the endpoint (``serverless.memory_mb``)."""

    name: str
    path: str
    kind: Kind
    default: Any
    description: str | None
    sensitive: bool = False


@dataclass(frozen=True)
class Group:
    """One nested block (``model``, ``serverless``...); ``collapsible``: all-default reads as absent."""

    name: str
    path: str
    fields: tuple[Leaf | Group, ...]
    description: str | None
    required: bool = False
    collapsible: bool = True


Field = Leaf | Group


def endpoint_fields() -> tuple[Field, ...]:
    """The endpoint's attributes and blocks, in the spec's order."""
    out: list[Field] = []
    for name, info in EndpointSpec.model_fields.items():
        if name == "compute":
            for block, model in COMPUTE_BLOCKS.items():
                described = f"{model.__doc__ or ''} At most one of serverless and dedicated (neither: serverless)."
                out.append(
                    Group(
                        block,
                        block,
                        _fields(model, block + ".", skip={"type"}),
                        described.strip(),
                        collapsible=block == "serverless",
                    )
                )
            continue
        out.append(_field(name, "", info.annotation, info.description, _default(info)))
    return tuple(out)


def to_spec(fields: tuple[Field, ...], state: dict[str, Any]) -> dict[str, Any]:
    """The spec JSON a state (or a configuration) stands for: nulls left out, so the server fills defaults."""
    spec: dict[str, Any] = {}
    for field in fields:
        value = state.get(field.name)
        if value is None or not _known(value):
            continue
        if isinstance(field, Group):
            spec[field.name] = to_spec(field.fields, value)
        elif field.kind == "number" and isinstance(value, float) and value.is_integer():
            spec[field.name] = int(value)
        else:
            spec[field.name] = value
    for block in COMPUTE_BLOCKS:
        if block in spec:
            spec["compute"] = {"type": block, **spec.pop(block)}
    return spec


def to_state(fields: tuple[Field, ...], live: dict[str, Any], prior: dict[str, Any] | None) -> dict[str, Any]:
    """The state of a live endpoint's spec (a description), against the prior state (None: an import)."""
    view = dict(live)
    compute = dict(view.pop("compute", None) or {"type": "serverless"})
    kind = compute.pop("type", "serverless")
    for block in COMPUTE_BLOCKS:
        view[block] = compute if block == kind else None
    # A `registry://group/latest-approved` source pins its version (and task) on the server: not the config's.
    known = prior is not None or str((live.get("model") or {}).get("source", "")).endswith("/latest-approved")
    return _compact(fields, view, prior, known)


def spec_revision(live: dict[str, Any]) -> str:
    """A short digest of the spec as the server describes it: it changes exactly when the spec does."""
    spec = {key: value for key, value in live.items() if key in EndpointSpec.model_fields}
    return hashlib.sha256(json.dumps(spec, sort_keys=True).encode()).hexdigest()[:12]


def spec_part(fields: tuple[Field, ...], state: dict[str, Any] | None) -> dict[str, Any]:
    """Only the spec's fields of a state (not the computed ones, nor timeouts): what decides an update."""
    return {field.name: (state or {}).get(field.name) for field in fields}


# --- building the fields from the spec's models --------------------------------------------


def _fields(model: type[BaseModel], prefix: str, skip: frozenset[str] | set[str] = frozenset()) -> tuple[Field, ...]:
    return tuple(
        _field(name, prefix, info.annotation, info.description, _default(info))
        for name, info in model.model_fields.items()
        if name not in skip
    )


def _field(name: str, prefix: str, annotation: Any, description: str | None, default: Any) -> Field:
    bare = _bare(annotation)
    path = prefix + name
    if isinstance(bare, type) and issubclass(bare, BaseModel):
        return Group(
            name, path, _fields(bare, path + "."), description or (bare.__doc__ or "").strip(), required=path == "model"
        )
    return Leaf(name, path, _kind(bare, path), default, description, sensitive=path == "secrets")


def _bare(annotation: Any) -> Any:
    """``Annotated[int, ...] | None`` -> ``int``."""
    origin = typing.get_origin(annotation)
    if origin is typing.Annotated:
        return _bare(typing.get_args(annotation)[0])
    if origin in (typing.Union, types.UnionType):
        kept = [arg for arg in typing.get_args(annotation) if arg is not type(None)]
        return _bare(kept[0]) if len(kept) == 1 else annotation
    return annotation


def _kind(bare: Any, path: str) -> Kind:
    if bare is bool:
        return "bool"
    if bare is int or bare is float:
        return "number"
    if bare is str or typing.get_origin(bare) is Literal:
        return "string"
    if typing.get_origin(bare) is dict or bare is dict:
        return "map"
    if typing.get_origin(bare) is list or bare is list:
        return "list"
    raise TypeError(f"spec field {path} has a type ({bare!r}) the Terraform mapping does not know")


def _default(info: Any) -> Any:
    return info.get_default(call_default_factory=True)


# --- compaction ------------------------------------------------------------------------------


def _compact(
    fields: tuple[Field, ...], live: dict[str, Any], prior: dict[str, Any] | None, known: bool
) -> dict[str, Any]:
    """``known``: there is a prior state (not an import), so a server-filled null can stay null."""
    out: dict[str, Any] = {}
    for field in fields:
        value = live.get(field.name)
        before = (prior or {}).get(field.name)
        if isinstance(field, Group):
            if not isinstance(value, dict):
                out[field.name] = None
                continue
            inner = _compact(field.fields, value, before if isinstance(before, dict) else None, known)
            empty = all(item is None for item in inner.values())
            out[field.name] = None if before is None and empty and field.collapsible and not field.required else inner
            continue
        out[field.name] = _leaf(field, value, before, known)
    return out


def _leaf(field: Leaf, value: Any, before: Any, known: bool) -> Any:
    if field.sensitive:
        return _secrets(value, before)
    if before is not None and _known(before):
        return value
    if value is None or value == field.default or value in ({}, []):
        return None
    if field.path in SERVER_FILLED and known:
        return None
    return value


def _secrets(live: Any, before: Any) -> dict[str, str] | None:
    """Secrets come back by name only: the state keeps the configuration's values for the names the server has."""
    names = list(live or {})
    if not names:
        return {} if isinstance(before, dict) else None
    kept = before if isinstance(before, dict) else {}
    return {name: kept.get(name, REDACTED) for name in names}


def _known(value: Any) -> bool:
    """False for Terraform's unknown values (``tf.types.Unknown``), recognised without importing ``tf``."""
    return type(value).__name__ != "_Unknown"
