"""The model registry's records: model groups and their numbered versions, with approval status.

A version's number is the group's next (1, 2, ...), given inside the insert's transaction; a clash
of two registrations at once is retried. Approval statuses are SageMaker's names. The files of a
folder version live in ``store.artifacts`` under its content hash; this module stores only records.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import re
from typing import Any, Literal

import sqlalchemy as sa

from hubserve.store.engine import engine_for
from hubserve.store.schema import upgrade

PENDING = "PendingManualApproval"
APPROVED = "Approved"
REJECTED = "Rejected"
APPROVALS = (PENDING, APPROVED, REJECTED)
SourceKind = Literal["folder", "hub", "uri"]
LATEST = "latest-approved"
SCHEME = "registry://"
GROUP_NAME = re.compile(r"[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?")
_REF = re.compile(r"registry://([^/]+)/([^/]+)")


class RegistryError(ValueError):
    """A registry reference that cannot be used; the message says why and what to do."""


def is_ref(source: str) -> bool:
    return source.startswith(SCHEME)


def parse_ref(source: str) -> tuple[str, int | None]:
    """``registry://group/N`` -> (group, N); ``registry://group/latest-approved`` -> (group, None)."""
    match = _REF.fullmatch(source)
    if match is None or not GROUP_NAME.fullmatch(match.group(1)):
        raise RegistryError(f"'{source}' is not a registry reference: use registry://GROUP/N or registry://GROUP/{LATEST}")
    selector = match.group(2)
    if selector == LATEST:
        return match.group(1), None
    if not selector.isdigit() or int(selector) < 1:
        raise RegistryError(f"'{source}': the version must be a number from 1 or '{LATEST}'")
    return match.group(1), int(selector)

_metadata = sa.MetaData()
groups_table = sa.Table(
    "model_groups",
    _metadata,
    sa.Column("name", sa.String(63), primary_key=True),
    sa.Column("description", sa.Text, nullable=False),
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
)
versions_table = sa.Table(
    "model_versions",
    _metadata,
    sa.Column("group_name", sa.String(63), primary_key=True),
    sa.Column("number", sa.Integer, primary_key=True),
    sa.Column("source_kind", sa.String(16), nullable=False),
    sa.Column("source", sa.Text, nullable=False),
    sa.Column("revision", sa.String(255), nullable=True),
    sa.Column("task", sa.String(64), nullable=True),
    sa.Column("metrics", sa.Text, nullable=False),
    sa.Column("description", sa.Text, nullable=False),
    sa.Column("sha256", sa.String(64), nullable=True),
    sa.Column("approval", sa.String(32), nullable=False),
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
)


def _now() -> dt.datetime:
    return dt.datetime.now(dt.timezone.utc)


def _utc(value: dt.datetime) -> dt.datetime:
    return value if value.tzinfo is not None else value.replace(tzinfo=dt.timezone.utc)  # SQLite drops it


@dataclasses.dataclass(frozen=True)
class ModelVersion:
    """One registered version: where its model comes from, what it is, and whether it may be deployed."""

    group: str
    number: int
    source_kind: str
    source: str  # the folder it was registered from, the Hub id, or the URI
    revision: str | None
    task: str | None
    metrics: dict[str, Any]
    description: str
    sha256: str | None  # folder versions: the content hash of the stored files
    approval: str
    created_at: dt.datetime
    updated_at: dt.datetime

    @property
    def uri(self) -> str:
        return f"registry://{self.group}/{self.number}"

    def to_dict(self) -> dict[str, Any]:
        return {
            "group": self.group, "version": self.number, "uri": self.uri, "source_kind": self.source_kind,
            "source": self.source, "revision": self.revision, "task": self.task, "metrics": self.metrics,
            "description": self.description, "sha256": self.sha256, "approval_status": self.approval,
            "created_at": self.created_at.isoformat(), "updated_at": self.updated_at.isoformat(),
        }  # fmt: skip


@dataclasses.dataclass(frozen=True)
class ModelGroup:
    name: str
    description: str
    created_at: dt.datetime
    versions: int
    latest_approved: int | None

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name, "description": self.description, "created_at": self.created_at.isoformat(),
            "versions": self.versions, "latest_approved": self.latest_approved,
        }  # fmt: skip


class RegistryStore:
    """CRUD over model groups and versions, on the server's shared engine."""

    def __init__(self, engine: sa.Engine | str) -> None:
        self._engine, self._owns_engine = engine_for(engine)
        upgrade(self._engine)

    def close(self) -> None:
        if self._owns_engine:
            self._engine.dispose()

    def add_version(self, group: str, *, source_kind: str, source: str, revision: str | None, task: str | None,
                    metrics: dict[str, Any], description: str, sha256: str | None) -> ModelVersion:  # fmt: skip
        """Register the group's next version (creating the group on its first), pending approval."""
        for _ in range(20):
            now = _now()
            try:
                with self._engine.begin() as conn:
                    exists = conn.execute(sa.select(groups_table.c.name).where(groups_table.c.name == group)).first()
                    if exists is None:
                        conn.execute(groups_table.insert().values(name=group, description="", created_at=now))
                    last = conn.execute(
                        sa.select(sa.func.max(versions_table.c.number)).where(versions_table.c.group_name == group)
                    ).scalar()
                    row = {
                        "group_name": group, "number": (last or 0) + 1, "source_kind": source_kind, "source": source,
                        "revision": revision, "task": task, "metrics": json.dumps(metrics), "description": description,
                        "sha256": sha256, "approval": PENDING, "created_at": now, "updated_at": now,
                    }  # fmt: skip
                    conn.execute(versions_table.insert().values(**row))
                return _version(row)
            except sa.exc.IntegrityError:
                continue  # another registration took the number (or made the group): try the next
        raise RuntimeError(f"could not number a new version of '{group}': too many registrations at once")

    def create_group(self, name: str, description: str = "") -> ModelGroup | None:
        """An empty group (SageMaker's CreateModelPackageGroup); None when the name is taken."""
        try:
            with self._engine.begin() as conn:
                conn.execute(groups_table.insert().values(name=name, description=description, created_at=_now()))
        except sa.exc.IntegrityError:
            return None
        return self.group(name)

    def delete_group(self, name: str) -> bool:
        """Remove a group that has no versions left; False when it still has some (or does not exist)."""
        with self._engine.begin() as conn:
            if conn.execute(sa.select(versions_table.c.number).where(versions_table.c.group_name == name)).first():
                return False
            return conn.execute(groups_table.delete().where(groups_table.c.name == name)).rowcount > 0

    def get(self, group: str, number: int) -> ModelVersion | None:
        query = versions_table.select().where(versions_table.c.group_name == group, versions_table.c.number == number)
        with self._engine.connect() as conn:
            row = conn.execute(query).mappings().first()
        return None if row is None else _version(dict(row))

    def latest_approved(self, group: str) -> ModelVersion | None:
        """The highest-numbered Approved version: what ``registry://group/latest-approved`` runs."""
        query = (
            versions_table.select()
            .where(versions_table.c.group_name == group, versions_table.c.approval == APPROVED)
            .order_by(versions_table.c.number.desc())
            .limit(1)
        )
        with self._engine.connect() as conn:
            row = conn.execute(query).mappings().first()
        return None if row is None else _version(dict(row))

    def group(self, name: str) -> ModelGroup | None:
        return next((found for found in self.groups() if found.name == name), None)

    def groups(self) -> list[ModelGroup]:
        with self._engine.connect() as conn:
            rows = conn.execute(groups_table.select().order_by(groups_table.c.name)).mappings().all()
            counts: dict[str, int] = dict(conn.execute(
                sa.select(versions_table.c.group_name, sa.func.count()).group_by(versions_table.c.group_name)
            ).all())  # fmt: skip
            approved: dict[str, int] = dict(conn.execute(
                sa.select(versions_table.c.group_name, sa.func.max(versions_table.c.number))
                .where(versions_table.c.approval == APPROVED).group_by(versions_table.c.group_name)
            ).all())  # fmt: skip
        return [
            ModelGroup(row["name"], row["description"], _utc(row["created_at"]), counts.get(row["name"], 0),
                       approved.get(row["name"]))
            for row in rows
        ]

    def versions(self, group: str) -> list[ModelVersion]:
        query = versions_table.select().where(versions_table.c.group_name == group).order_by(versions_table.c.number)
        with self._engine.connect() as conn:
            rows = conn.execute(query).mappings().all()
        return [_version(dict(row)) for row in rows]

    def set_approval(self, group: str, number: int, approval: str) -> ModelVersion | None:
        if approval not in APPROVALS:
            raise ValueError(f"approval status must be one of {', '.join(APPROVALS)}")
        with self._engine.begin() as conn:
            conn.execute(
                versions_table.update()
                .where(versions_table.c.group_name == group, versions_table.c.number == number)
                .values(approval=approval, updated_at=_now())
            )
        return self.get(group, number)

    def delete_version(self, group: str, number: int) -> None:
        with self._engine.begin() as conn:
            conn.execute(
                versions_table.delete().where(versions_table.c.group_name == group, versions_table.c.number == number)
            )

    def hash_in_use(self, sha256: str) -> bool:
        """Whether any version still holds this content (its stored files must stay)."""
        with self._engine.connect() as conn:
            return conn.execute(sa.select(versions_table.c.number).where(versions_table.c.sha256 == sha256)).first() is not None


def _version(row: dict[str, Any]) -> ModelVersion:
    return ModelVersion(
        group=row["group_name"], number=row["number"], source_kind=row["source_kind"], source=row["source"],
        revision=row["revision"], task=row["task"], metrics=json.loads(row["metrics"] or "{}"),
        description=row["description"], sha256=row["sha256"], approval=row["approval"],
        created_at=_utc(row["created_at"]), updated_at=_utc(row["updated_at"]),
    )  # fmt: skip


def find(registry: RegistryStore, source: str, pinned: str | None = None) -> ModelVersion:
    """The version a registry source names; ``pinned`` (the spec's revision) fixes which one latest-approved ran."""
    group, number = parse_ref(source)
    if number is None and pinned is not None and pinned.isdigit():
        number = int(pinned)
    if number is not None:
        found = registry.get(group, number)
        if found is None:
            raise RegistryError(f"'{source}': model group '{group}' has no version {number} (hubserve model list {group})")
        if found.approval == REJECTED:
            raise RegistryError(f"{found.uri} is Rejected: approve it, or deploy another version")
        return found
    latest = registry.latest_approved(group)
    if latest is None:
        raise RegistryError(f"'{source}': model group '{group}' has no Approved version yet (hubserve model approve {group} N)")
    return latest
