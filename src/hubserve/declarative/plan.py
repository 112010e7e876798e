"""The plan: what ``apply`` would do to make the live endpoints match the spec files.

Pure: it takes the desired specs and the live descriptions (``GET /v1/endpoints``' items) and
returns actions; nothing here talks to a server.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any, Literal

from hubserve.declarative.diff import FieldChange, desired_against, diff, normalise
from hubserve.spec import EndpointSpec

ActionKind = Literal["create", "update", "unchanged", "delete"]


@dataclass(frozen=True)
class Action:
    """One endpoint's part of the plan; ``spec`` is the normalised desired spec (None for delete)."""

    kind: ActionKind
    name: str
    spec: dict[str, Any] | None = None
    changes: list[FieldChange] = field(default_factory=list)
    state: str | None = None  # the live state, when the endpoint exists

    def to_json(self) -> dict[str, Any]:
        return {"action": self.kind, "name": self.name, "state": self.state,
                "changes": [change.to_json() for change in self.changes]}  # fmt: skip


@dataclass(frozen=True)
class Plan:
    actions: list[Action]
    unmanaged: list[str] = field(default_factory=list)  # live endpoints not in the files, kept (no --prune)

    @property
    def has_changes(self) -> bool:
        return any(action.kind != "unchanged" for action in self.actions)

    def count(self, kind: ActionKind) -> int:
        return sum(1 for action in self.actions if action.kind == kind)

    def summary(self) -> str:
        return (f"{self.count('create')} to create, {self.count('update')} to update, "
                f"{self.count('delete')} to delete, {self.count('unchanged')} unchanged")  # fmt: skip

    def to_json(self) -> dict[str, Any]:
        return {"changes": self.has_changes, "actions": [action.to_json() for action in self.actions],
                "unmanaged": self.unmanaged}  # fmt: skip


def make_plan(desired: Iterable[EndpointSpec], live: Iterable[dict[str, Any]], *, prune: bool = False) -> Plan:
    """Create what is missing, update what differs, delete (``prune``) live endpoints not desired."""
    live_by_name = {item["name"]: item for item in live if item.get("state") != "deleting"}
    actions: list[Action] = []
    wanted: set[str] = set()
    for spec in desired:
        wanted.add(spec.name)
        target = normalise(spec)
        current = live_by_name.get(spec.name)
        if current is None:
            actions.append(Action("create", spec.name, target))
            continue
        current_spec = normalise(current)
        target = desired_against(target, current_spec)
        changes = diff(current_spec, target)
        actions.append(Action("update" if changes else "unchanged", spec.name, target, changes, current.get("state")))
    others = sorted(name for name in live_by_name if name not in wanted)
    if prune:
        actions.extend(Action("delete", name, state=live_by_name[name].get("state")) for name in others)
        return Plan(actions)
    return Plan(actions, unmanaged=others)
