"""The plan: create / update with field diffs / unchanged / delete, on normalised specs."""

from __future__ import annotations

from typing import Any

from hubserve.declarative.diff import UNSET, FieldChange, compact, diff, normalise
from hubserve.declarative.load import parse_specs
from hubserve.declarative.plan import make_plan
from hubserve.spec import EndpointSpec


def live(spec: dict[str, Any], state: str = "running") -> dict[str, Any]:
    """A description as GET /v1/endpoints returns it: the normalised spec plus observed fields."""
    return {**normalise(spec), "state": state, "url": "http://x", "replicas": {"ready": 1}, "notes": []}


A = {"name": "a", "model": {"source": "/models/a", "task": "text-classification"}}


def test_missing_endpoint_is_created_and_equal_one_unchanged() -> None:
    desired = parse_specs("- {name: a, model: {source: /models/a, task: text-classification}}\n- {name: b, model: {source: org/b}}")
    plan = make_plan(desired, [live(A)])
    assert [(action.kind, action.name) for action in plan.actions] == [("unchanged", "a"), ("create", "b")]
    assert plan.has_changes and plan.summary() == "1 to create, 0 to update, 0 to delete, 1 unchanged"


def test_defaults_on_either_side_are_not_changes() -> None:
    explicit = {**A, "compute": {"type": "serverless", "memory_mb": 2048, "max_concurrency": 5}, "env": {}}
    plan = make_plan([EndpointSpec.model_validate(A)], [live(explicit)])
    assert not plan.has_changes


def test_inferred_task_is_not_drift_but_a_new_source_is() -> None:
    no_task = {"name": "a", "model": {"source": "/models/a"}}
    assert not make_plan([EndpointSpec.model_validate(no_task)], [live(A)]).has_changes
    moved = {"name": "a", "model": {"source": "/models/b"}}
    [action] = make_plan([EndpointSpec.model_validate(moved)], [live(A)]).actions
    assert [change.describe() for change in action.changes] == [
        "model.source: /models/a -> /models/b",
        "model.task: text-classification -> null",
    ]


def test_update_lists_each_field() -> None:
    desired = {**A, "compute": {"memory_mb": 4096, "max_concurrency": 10}, "env": {"X": "1"}}
    [action] = make_plan([EndpointSpec.model_validate(desired)], [live(A)]).actions
    assert action.kind == "update" and action.state == "running"
    assert [change.describe() for change in action.changes] == [
        "compute.max_concurrency: 5 -> 10",
        "compute.memory_mb: 2048 -> 4096",
        "env.X: (unset) -> 1",
    ]
    assert action.spec is not None and action.spec["compute"]["memory_mb"] == 4096


def test_compute_type_switch_shows_fields_leaving_and_arriving() -> None:
    desired = {**A, "compute": {"type": "dedicated", "instance": "cpu-medium"}}
    [action] = make_plan([EndpointSpec.model_validate(desired)], [live(A)]).actions
    described = [change.describe() for change in action.changes]
    assert "compute.type: serverless -> dedicated" in described
    assert "compute.memory_mb: 2048 -> (unset)" in described
    assert "compute.instance: (unset) -> cpu-medium" in described


def test_prune_deletes_the_unnamed_else_they_are_only_listed() -> None:
    desired = [EndpointSpec.model_validate(A)]
    others = [live(A), live({**A, "name": "z"}), live({**A, "name": "gone"}, state="deleting")]
    kept = make_plan(desired, others)
    assert not kept.has_changes and kept.unmanaged == ["z"]
    pruned = make_plan(desired, others, prune=True)
    assert [(a.kind, a.name) for a in pruned.actions] == [("unchanged", "a"), ("delete", "z")]
    assert pruned.to_json()["actions"][1] == {"action": "delete", "name": "z", "state": "running", "changes": []}


def test_export_shape_round_trips_to_no_changes() -> None:
    full = {**A, "compute": {"type": "dedicated", "instance": "cpu-small", "min_replicas": 0}, "env": {"K": "v"}}
    exported = compact(normalise(live(full)))
    assert "revision" not in exported["model"] and "batching" not in exported and "async_inference" not in exported
    assert not make_plan([EndpointSpec.model_validate(exported)], [live(full)]).has_changes


def test_diff_is_empty_for_equal_specs_and_json_has_nulls_for_unset() -> None:
    spec = normalise(A)
    assert diff(spec, spec) == []
    assert FieldChange("env.X", UNSET, "1").to_json() == {"field": "env.X", "from": None, "to": "1"}
