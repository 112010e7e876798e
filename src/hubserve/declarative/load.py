"""Read endpoint specs from a file: one spec, a YAML list, ``{endpoints: [...]}``, or several YAML documents.

Every spec is validated with ``EndpointSpec`` here, before any request, and every problem is
reported at once with the file, the spec's position and name, and the field.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any, TextIO

import pydantic
import yaml

from hubserve.spec import EndpointSpec


class SpecsError(ValueError):
    """A spec file that cannot be read, parsed or validated; the message names file and field."""


def load_specs(path: str, stdin: TextIO | None = None) -> list[EndpointSpec]:
    """The endpoint specs in ``path`` (``-`` reads stdin); local model folders relative to the file."""
    if path == "-":
        text, base, source = (stdin or sys.stdin).read(), Path.cwd(), "stdin"
    else:
        try:
            text = Path(path).read_text(encoding="utf-8")
        except OSError as exc:
            raise SpecsError(f"cannot read {path}: {exc.strerror or exc}") from None
        base, source = Path(path).resolve().parent, path
    return parse_specs(text, source=source, base_dir=base)


def parse_documents(text: str, source: str) -> list[Any]:
    """The documents in ``text``, read by the name's suffix so each error is the format's own.

    ``.json`` is JSON only (one document, with JSON's message and position: a YAML reading
    would hide a missing comma behind a confusing YAML complaint); ``.yaml``/``.yml`` is YAML;
    anything else (stdin, other names) is YAML, which reads JSON too. ``hubserve endpoint
    create -f``, ``apply`` and ``plan`` all read files here, so they word errors alike.
    """
    if source.lower().endswith(".json"):
        try:
            return [json.loads(text)]
        except json.JSONDecodeError as exc:
            raise SpecsError(f"{source} is not valid JSON: {exc.msg} at line {exc.lineno}, column {exc.colno}") from None
    try:
        return [doc for doc in yaml.safe_load_all(text) if doc is not None]
    except yaml.YAMLError as exc:
        kind = "YAML" if source.lower().endswith((".yaml", ".yml")) else "YAML (or JSON)"
        raise SpecsError(f"{source} is not valid {kind}: {_yaml_problem(exc)}") from None


def _yaml_problem(exc: yaml.YAMLError) -> str:
    """PyYAML's problem and 1-based position, in the words JSON errors use."""
    if isinstance(exc, yaml.MarkedYAMLError) and exc.problem_mark is not None:
        mark = exc.problem_mark
        context = f" ({exc.context})" if exc.context else ""
        return f"{exc.problem}{context} at line {mark.line + 1}, column {mark.column + 1}"
    return " ".join(str(exc).split())


def parse_specs(text: str, source: str = "specs", base_dir: Path | None = None) -> list[EndpointSpec]:
    """Parse and validate every spec in ``text``; SpecsError lists every problem found."""
    documents = [doc for doc in parse_documents(text, source) if doc is not None]
    raw: list[Any] = []
    for document in documents:
        if isinstance(document, list):
            raw.extend(document)
        elif isinstance(document, dict) and set(document) == {"endpoints"}:
            items = document["endpoints"]
            if not isinstance(items, list):
                raise SpecsError(f"{source}: endpoints must be a list of endpoint specs")
            raw.extend(items)
        else:
            raw.append(document)
    if not raw:
        raise SpecsError(f"{source} holds no endpoint specs (expected a spec, a list of specs or endpoints: [...])")
    problems: list[str] = []
    specs: list[EndpointSpec] = []
    for index, item in enumerate(raw, start=1):
        where = f"{source}: endpoint {index}"
        if not isinstance(item, dict):
            problems.append(f"{where}: must be a mapping with name, model and compute (got {type(item).__name__})")
            continue
        if isinstance(item.get("name"), str):
            where += f" ('{item['name']}')"
        try:
            spec = EndpointSpec.model_validate(_absolute_sources(item, base_dir))
        except pydantic.ValidationError as exc:
            problems.extend(f"{where}: {_field(error)}: {_message(error)}" for error in exc.errors())
            continue
        specs.append(spec)
    seen: set[str] = set()
    for spec in specs:
        if spec.name in seen:
            problems.append(f"{source}: endpoint '{spec.name}' is defined more than once")
        seen.add(spec.name)
    if problems:
        raise SpecsError("\n".join(problems))
    return specs


def _field(error: Any) -> str:
    """The dotted field, without the union tag pydantic adds (compute.serverless.memory_mb)."""
    return ".".join(str(part) for part in error.get("loc", ()) if str(part) not in ("serverless", "dedicated")) or "spec"


def _message(error: Any) -> str:
    return str(error.get("msg", "")).removeprefix("Value error, ")


def _absolute_sources(item: dict[str, Any], base_dir: Path | None) -> dict[str, Any]:
    """``./model`` means next to the spec file, wherever apply runs (the server would use its own cwd)."""
    model = item.get("model")
    if base_dir is None or not isinstance(model, dict) or not isinstance(model.get("source"), str):
        return item
    source = model["source"].strip()
    raw = source.removeprefix("file://")
    if raw.startswith(("./", "../")):
        return {**item, "model": {**model, "source": str((base_dir / raw).resolve())}}
    return item
