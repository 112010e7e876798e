"""Endpoint specs as the CLI receives them: a YAML/JSON file (or stdin) and flags.

Flags become a partial spec (for create) or a JSON merge patch (for update). The
server validates; here we only shape, so the rules live in one place (spec.py on
the server) and the CLI reports the server's field-by-field answer.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TextIO

import typer

from hubserve.declarative.load import SpecsError, parse_documents
from hubserve.spec import DedicatedCompute, ServerlessCompute, merge_patch


class SpecFileError(ValueError):
    """A spec file that cannot be read or parsed into a mapping."""


def load_spec_file(path: str, stdin: TextIO | None = None) -> dict[str, Any]:
    """Read a spec from a YAML or JSON file (by its suffix); ``-`` reads stdin."""
    if path == "-":
        return parse_spec_text((stdin or sys.stdin).read(), source="stdin")
    file = Path(path)
    try:
        text = file.read_text(encoding="utf-8")
    except OSError as exc:
        raise SpecFileError(f"cannot read spec file {path}: {exc.strerror or exc}") from exc
    return parse_spec_text(text, source=path)


def parse_spec_text(text: str, source: str = "spec") -> dict[str, Any]:
    """Parse one spec the way ``apply`` reads files (``.json`` as JSON, else YAML); it must be a mapping."""
    try:
        documents = parse_documents(text, source)
    except SpecsError as exc:
        raise SpecFileError(str(exc)) from None
    if len(documents) > 1:
        raise SpecFileError(
            f"{source} holds {len(documents)} documents; `endpoint create -f` takes one spec "
            "(`hubserve apply -f` takes several)"
        )
    data = documents[0] if documents else None
    if not isinstance(data, dict):
        kind = "empty" if data is None else f"a {type(data).__name__}"
        raise SpecFileError(f"{source} must hold an endpoint spec (a mapping with name, model, compute); it is {kind}")
    return data


@dataclass
class SpecFlags:
    """The spec-shaping flags of `endpoint create` and `endpoint update`; None means not given."""

    model: str | None = None
    revision: str | None = None
    task: str | None = None
    serverless: bool | None = None  # True: --serverless, False: --dedicated
    memory_mb: int | None = None
    max_concurrency: int | None = None
    instance: str | None = None
    min_replicas: int | None = None
    max_replicas: int | None = None
    env: list[str] = field(default_factory=list)
    custom_code: bool | None = None
    invocation_timeout_s: int | None = None
    multi_model: bool | None = None


_SERVERLESS_FLAGS = {"memory_mb": "--memory-mb", "max_concurrency": "--max-concurrency"}
_DEDICATED_FLAGS = {"instance": "--instance", "min_replicas": "--min-replicas", "max_replicas": "--max-replicas"}


def parse_env(pairs: list[str]) -> dict[str, str]:
    """KEY=VALUE pairs into a mapping (VALUE may be empty or hold '=')."""
    env: dict[str, str] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key.strip():
            raise typer.BadParameter(f"expected KEY=VALUE, got {pair!r}", param_hint="--env")
        env[key.strip()] = value
    return env


def patch_from_flags(flags: SpecFlags) -> dict[str, Any]:
    """The JSON merge patch that the given flags describe (empty when none were given).

    When the compute type is named (or implied by type-only flags such as
    --instance), the other type's fields are nulled so a serverless endpoint can
    become dedicated, and back, with one patch.
    """
    patch: dict[str, Any] = {}
    model = {
        key: value
        for key, value in (
            ("source", flags.model), ("revision", flags.revision), ("task", flags.task), ("multi_model", flags.multi_model)
        )
        if value is not None
    }  # fmt: skip
    if model:
        patch["model"] = model
    compute_type, compute = _compute(flags)
    if compute_type is not None:
        other = DedicatedCompute if compute_type == "serverless" else ServerlessCompute
        own = ServerlessCompute if compute_type == "serverless" else DedicatedCompute
        compute = {
            **{name: None for name in other.model_fields if name not in own.model_fields},
            "type": compute_type,
            **compute,
        }
    if compute:
        patch["compute"] = compute
    if flags.env:
        patch["env"] = parse_env(flags.env)
    if flags.custom_code is not None:
        patch["custom_code"] = flags.custom_code
    if flags.invocation_timeout_s is not None:
        patch["invocation_timeout_s"] = flags.invocation_timeout_s
    return patch


def spec_from_flags(name: str | None, flags: SpecFlags, base: dict[str, Any] | None = None) -> dict[str, Any]:
    """A full spec for create: ``base`` (from a file) with NAME and the flags laid over it."""
    spec = dict(base or {})
    if name:
        spec["name"] = name
    if not spec.get("name"):
        raise typer.BadParameter("give the endpoint a NAME (or a name in the spec file)", param_hint="NAME")
    spec = merge_patch(spec, patch_from_flags(flags))
    if not isinstance(spec.get("model"), dict) or not spec["model"].get("source"):
        raise typer.BadParameter("name the model: --model PATH_OR_REPO (or model.source in -f)", param_hint="--model")
    if isinstance(spec.get("compute"), dict):  # nulls from a type switch have done their job
        spec["compute"] = {k: v for k, v in spec["compute"].items() if v is not None}
    return spec


def _compute(flags: SpecFlags) -> tuple[str | None, dict[str, Any]]:
    serverless = {k: getattr(flags, k) for k in _SERVERLESS_FLAGS if getattr(flags, k) is not None}
    dedicated = {k: getattr(flags, k) for k in _DEDICATED_FLAGS if getattr(flags, k) is not None}
    if flags.serverless is True and dedicated:
        raise typer.BadParameter(
            f"{', '.join(_DEDICATED_FLAGS[k] for k in dedicated)} apply to dedicated compute, not --serverless"
        )
    if flags.serverless is False and serverless:
        raise typer.BadParameter(
            f"{', '.join(_SERVERLESS_FLAGS[k] for k in serverless)} apply to serverless compute, not --dedicated"
        )
    if serverless and dedicated:
        raise typer.BadParameter(
            f"{', '.join(_SERVERLESS_FLAGS[k] for k in serverless)} (serverless) and "
            f"{', '.join(_DEDICATED_FLAGS[k] for k in dedicated)} (dedicated) cannot be mixed"
        )
    if flags.serverless is not None:
        return ("serverless" if flags.serverless else "dedicated"), {**serverless, **dedicated}
    if dedicated:
        return "dedicated", dedicated
    if serverless:
        return "serverless", serverless
    return None, {}
