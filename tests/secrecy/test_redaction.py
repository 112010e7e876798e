"""Secrets in the spec: shown by name only, kept across updates, compared by name in a plan."""

from __future__ import annotations

import json

import pytest

from hubserve.declarative.plan import make_plan
from hubserve.spec import REDACTED, EndpointSpec, keep_secrets, redacted


def _spec(**secrets: str) -> EndpointSpec:
    return EndpointSpec.model_validate({"name": "e", "model": {"source": "org/m"}, "secrets": secrets})


def test_redacted_names_secrets_without_values() -> None:
    shown = redacted(_spec(API_KEY="sk-1"))
    assert shown["secrets"] == {"API_KEY": REDACTED} and "sk-1" not in json.dumps(shown)


def test_keep_secrets_restores_redacted_values_and_unsent_secrets() -> None:
    stored = _spec(API_KEY="sk-1", OTHER="o")
    assert keep_secrets(_spec(API_KEY=REDACTED, NEW="n"), stored).secrets == {"API_KEY": "sk-1", "NEW": "n"}
    assert keep_secrets(_spec(), stored, sent=False).secrets == {"API_KEY": "sk-1", "OTHER": "o"}
    assert keep_secrets(_spec(), stored, sent=True).secrets == {}  # sent empty: removed
    with pytest.raises(ValueError, match=r"secrets\.UNKNOWN"):
        keep_secrets(_spec(UNKNOWN=REDACTED), stored)


def test_a_plan_compares_secrets_by_name_and_never_prints_values() -> None:
    live = {**redacted(_spec(API_KEY="sk-1")), "state": "running"}
    same = make_plan([_spec(API_KEY="sk-1")], [live])
    assert not same.has_changes
    added = make_plan([_spec(API_KEY="sk-1", NEW="sk-2")], [live])
    assert added.has_changes and "sk-2" not in json.dumps(added.to_json())
