"""``hubserve export --format terraform``: live endpoints as a Terraform configuration that adopts them.

Each endpoint becomes an ``import`` block and a ``hubserve_endpoint`` resource holding exactly what
``terraform import`` would read (``fields.to_state`` with no prior state), so the first plan
imports them and changes nothing, and the next plan is empty. Needs Terraform 1.5 or newer
(``import`` blocks). Secrets are written as ``"***"``, which the server reads as "keep the stored
value"; the provider's token comes from $HUBSERVE_TOKEN, never from the file.
"""

from __future__ import annotations

import json
import re
from typing import Any

from hubserve.terraform import fields

INDENT = "  "
_IDENTIFIER = re.compile(r"^[A-Za-z_][A-Za-z0-9_-]*$")


def endpoints_as_terraform(endpoints: list[dict[str, Any]], url: str) -> str:
    """A whole configuration: the provider, then an import block and a resource per endpoint description."""
    endpoint_fields = fields.endpoint_fields()
    lines = [
        "# hubserve export --format terraform: `terraform init && terraform apply` adopts these endpoints",
        "# (Terraform >= 1.5; the plan imports them and changes nothing). The token comes from $HUBSERVE_TOKEN.",
        "terraform {",
        f"{INDENT}required_providers {{",
        f'{INDENT * 2}hubserve = {{ source = "hubserve/hubserve" }}',
        f"{INDENT}}}",
        "}",
        "",
        'provider "hubserve" {',
        f"{INDENT}url = {_string(url)}",
        "}",
    ]
    for live in endpoints:
        label = resource_label(str(live["name"]))
        state = fields.to_state(endpoint_fields, live, None)
        lines += [
            "",
            "import {",
            f"{INDENT}to = hubserve_endpoint.{label}",
            f"{INDENT}id = {_string(live['name'])}",
            "}",
        ]
        lines += ["", f'resource "hubserve_endpoint" "{label}" {{', *_body(endpoint_fields, state, 1), "}"]
    return "\n".join(lines) + "\n"


def resource_label(name: str) -> str:
    """A resource name for an endpoint: its own name with '-' as '_' (labels may not start with a digit)."""
    label = name.replace("-", "_")
    return label if _IDENTIFIER.match(label) else f"endpoint_{label}"


def _body(group: tuple[fields.Field, ...], state: dict[str, Any], depth: int) -> list[str]:
    pad = INDENT * depth
    leaves = [f for f in group if isinstance(f, fields.Leaf) and state.get(f.name) is not None]
    width = max((len(f.name) for f in leaves), default=0)
    lines: list[str] = []
    for field in group:
        value = state.get(field.name)
        if value is None:
            continue
        if isinstance(field, fields.Group):
            lines += [f"{pad}{field.name} {{", *_body(field.fields, value, depth + 1), f"{pad}}}"]
        elif field.sensitive:
            lines.append(
                f'{pad}# "***" keeps the value stored on the server; write the real one (or a variable) to change it'
            )
            lines.append(f"{pad}{field.name.ljust(width)} = {_value(value, depth)}")
        else:
            lines.append(f"{pad}{field.name.ljust(width)} = {_value(value, depth)}")
    return lines


def _value(value: Any, depth: int) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return json.dumps(value)
    if isinstance(value, list):
        return "[" + ", ".join(_value(item, depth) for item in value) + "]"
    if isinstance(value, dict):
        if not value:
            return "{}"
        pad = INDENT * (depth + 1)
        keys = {key: _string(str(key)) for key in value}
        width = max(len(text) for text in keys.values())
        inner = [f"{pad}{keys[key].ljust(width)} = {_value(item, depth + 1)}" for key, item in value.items()]
        return "{\n" + "\n".join(inner) + "\n" + INDENT * depth + "}"
    return _string(str(value))


def _string(text: str) -> str:
    """A quoted HCL string: JSON's escapes, plus the template sequences ``${`` and ``%{`` kept literal."""
    return json.dumps(text, ensure_ascii=False).replace("${", "$${").replace("%{", "%%{")
