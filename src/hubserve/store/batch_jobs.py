"""The batch job tables: one row per job, one row per input file with its committed progress.

A file's row says how far its results are durable: ``offset`` input bytes (``line`` lines) were
read, and their results fill the first ``out_bytes`` of the file's part file (``err_bytes`` of its
errors part). The runner appends a chunk's results to the part files first and then moves the row
forward in one transaction (with the job's counters), so after a crash the row is the truth and
anything beyond it in the part files is an uncommitted tail to cut off.
"""

from __future__ import annotations

import builtins
import dataclasses
import datetime as dt
import json
from typing import Any, overload

import sqlalchemy as sa

from hubserve.store.engine import engine_for
from hubserve.store.schema import upgrade

_metadata = sa.MetaData()

batch_jobs_table = sa.Table(
    "batch_jobs",
    _metadata,
    sa.Column("id", sa.String(40), primary_key=True),
    sa.Column("request", sa.Text, nullable=False),  # the job request as accepted (JSON)
    sa.Column("endpoint_spec", sa.Text, nullable=False),  # the spec its replicas run (JSON)
    sa.Column("desired", sa.String(16), nullable=False),  # "running" or "stopped": a restart restores it
    sa.Column("status", sa.String(16), nullable=False),
    sa.Column("reason", sa.Text, nullable=True),
    sa.Column("records_total", sa.Integer, nullable=True),  # None until the inputs are counted
    sa.Column("records_done", sa.Integer, nullable=False, default=0),  # committed, failed ones included
    sa.Column("records_failed", sa.Integer, nullable=False, default=0),
    sa.Column("runs", sa.Integer, nullable=False, default=0),  # how many times it (re)started processing
    sa.Column("run_started_at", sa.DateTime(timezone=True), nullable=True),
    sa.Column("run_start_done", sa.Integer, nullable=False, default=0),  # records_done when this run began
    sa.Column("run_ended_at", sa.DateTime(timezone=True), nullable=True),  # its last chunk committed
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("finished_at", sa.DateTime(timezone=True), nullable=True),
)

batch_job_files_table = sa.Table(
    "batch_job_files",
    _metadata,
    sa.Column("job_id", sa.String(40), primary_key=True),
    sa.Column("idx", sa.Integer, primary_key=True),
    sa.Column("url", sa.Text, nullable=False),  # the input file
    sa.Column("name", sa.Text, nullable=False),  # its path relative to the input location
    sa.Column("records", sa.Integer, nullable=True),
    sa.Column("done", sa.Integer, nullable=False, default=0),
    sa.Column("failed", sa.Integer, nullable=False, default=0),
    sa.Column("offset", sa.Integer, nullable=False, default=0),
    sa.Column("line", sa.Integer, nullable=False, default=0),
    sa.Column("out_bytes", sa.Integer, nullable=False, default=0),
    sa.Column("err_bytes", sa.Integer, nullable=False, default=0),
)


def _now() -> dt.datetime:
    return dt.datetime.now(dt.timezone.utc)


@overload
def _utc(value: dt.datetime) -> dt.datetime: ...
@overload
def _utc(value: None) -> None: ...
def _utc(value: dt.datetime | None) -> dt.datetime | None:
    # SQLite drops the timezone; everything we store is UTC.
    if value is not None and value.tzinfo is None:
        return value.replace(tzinfo=dt.timezone.utc)
    return value


@dataclasses.dataclass(frozen=True)
class BatchJobRecord:
    """One job as stored."""

    id: str
    request: dict[str, Any]
    endpoint_spec: dict[str, Any]
    desired: str
    status: str
    reason: str | None
    records_total: int | None
    records_done: int
    records_failed: int
    runs: int
    run_started_at: dt.datetime | None
    run_start_done: int
    run_ended_at: dt.datetime | None
    created_at: dt.datetime
    updated_at: dt.datetime
    finished_at: dt.datetime | None


@dataclasses.dataclass(frozen=True)
class FileProgress:
    """One input file and how much of it is committed."""

    idx: int
    url: str
    name: str
    records: int | None = None
    done: int = 0
    failed: int = 0
    offset: int = 0
    line: int = 0
    out_bytes: int = 0
    err_bytes: int = 0

    @property
    def finished(self) -> bool:
        return self.records is not None and self.done >= self.records


class BatchJobStore:
    """CRUD over batch jobs and their files; every progress step is one transaction."""

    def __init__(self, engine: sa.Engine | str) -> None:
        """``engine``: the server's shared engine, or a store URL for an engine of this store's own."""
        self._engine, self._owns_engine = engine_for(engine)
        upgrade(self._engine)  # the schema is the migrations', not this module's metadata

    def close(self) -> None:
        if self._owns_engine:
            self._engine.dispose()

    def insert(
        self, job_id: str, request: dict[str, Any], endpoint_spec: dict[str, Any], files: list[tuple[str, str]]
    ) -> BatchJobRecord:
        """Add a job in status running with its input files (url, relative name), in processing order."""
        now = _now()
        with self._engine.begin() as conn:
            conn.execute(
                batch_jobs_table.insert().values(
                    id=job_id, request=json.dumps(request), endpoint_spec=json.dumps(endpoint_spec),
                    desired="running", status="running", reason=None, records_total=None, records_done=0,
                    records_failed=0, runs=0, run_started_at=None, run_start_done=0, run_ended_at=None,
                    created_at=now, updated_at=now, finished_at=None,
                )
            )  # fmt: skip
            if files:
                conn.execute(
                    batch_job_files_table.insert(),
                    [{"job_id": job_id, "idx": i, "url": url, "name": name, "records": None, "done": 0, "failed": 0,
                      "offset": 0, "line": 0, "out_bytes": 0, "err_bytes": 0} for i, (url, name) in enumerate(files)],
                )  # fmt: skip
        record = self.get(job_id)
        assert record is not None
        return record

    def get(self, job_id: str) -> BatchJobRecord | None:
        with self._engine.connect() as conn:
            row = conn.execute(batch_jobs_table.select().where(batch_jobs_table.c.id == job_id)).mappings().first()
        return None if row is None else _record(dict(row))

    def list(self) -> list[BatchJobRecord]:
        with self._engine.connect() as conn:
            rows = conn.execute(batch_jobs_table.select().order_by(batch_jobs_table.c.created_at)).mappings().all()
        return [_record(dict(row)) for row in rows]

    def files(self, job_id: str) -> builtins.list[FileProgress]:
        table = batch_job_files_table
        with self._engine.connect() as conn:
            rows = conn.execute(table.select().where(table.c.job_id == job_id).order_by(table.c.idx)).mappings().all()
        return [FileProgress(**{k: v for k, v in row.items() if k != "job_id"}) for row in rows]

    def update(self, job_id: str, **fields: Any) -> None:
        """Change job fields (desired, status, reason, run_started_at, ...)."""
        with self._engine.begin() as conn:
            conn.execute(
                batch_jobs_table.update().where(batch_jobs_table.c.id == job_id).values(updated_at=_now(), **fields)
            )

    def set_counts(self, job_id: str, counts: dict[int, int]) -> None:
        """Record each file's record count (idx -> records) and the job's total, together."""
        table = batch_job_files_table
        with self._engine.begin() as conn:
            for idx, records in counts.items():
                conn.execute(table.update().where(table.c.job_id == job_id, table.c.idx == idx).values(records=records))
            total = conn.execute(sa.select(sa.func.sum(table.c.records)).where(table.c.job_id == job_id)).scalar_one()
            conn.execute(
                batch_jobs_table.update()
                .where(batch_jobs_table.c.id == job_id)
                .values(records_total=int(total or 0), updated_at=_now())
            )

    def begin_run(self, job_id: str) -> None:
        """Processing starts (again): records/s and ETA count from here."""
        with self._engine.begin() as conn:
            done = conn.execute(
                sa.select(batch_jobs_table.c.records_done).where(batch_jobs_table.c.id == job_id)
            ).scalar_one()
            conn.execute(
                batch_jobs_table.update()
                .where(batch_jobs_table.c.id == job_id)
                .values(
                    runs=batch_jobs_table.c.runs + 1,
                    run_started_at=_now(),
                    run_start_done=done,
                    run_ended_at=None,
                    updated_at=_now(),
                )
            )

    def end_run(self, job_id: str) -> None:
        """Processing stops (done, stopped or failed): records/s of the run end here."""
        self.update(job_id, run_ended_at=_now())

    def commit_chunk(self, job_id: str, progress: FileProgress, records: int, failed: int) -> None:
        """Move a file's committed position to ``progress`` and add the chunk to the job's counters."""
        table = batch_job_files_table
        with self._engine.begin() as conn:
            conn.execute(
                table.update().where(table.c.job_id == job_id, table.c.idx == progress.idx).values(
                    done=progress.done, failed=progress.failed, offset=progress.offset, line=progress.line,
                    out_bytes=progress.out_bytes, err_bytes=progress.err_bytes,
                )
            )  # fmt: skip
            conn.execute(
                batch_jobs_table.update()
                .where(batch_jobs_table.c.id == job_id)
                .values(
                    records_done=batch_jobs_table.c.records_done + records,
                    records_failed=batch_jobs_table.c.records_failed + failed,
                    updated_at=_now(),
                )
            )


def _record(row: dict[str, Any]) -> BatchJobRecord:
    return BatchJobRecord(
        id=row["id"],
        request=json.loads(row["request"]),
        endpoint_spec=json.loads(row["endpoint_spec"]),
        desired=row["desired"],
        status=row["status"],
        reason=row["reason"],
        records_total=row["records_total"],
        records_done=row["records_done"],
        records_failed=row["records_failed"],
        runs=row["runs"],
        run_started_at=_utc(row["run_started_at"]),
        run_start_done=row["run_start_done"],
        run_ended_at=_utc(row["run_ended_at"]),
        created_at=_utc(row["created_at"]),
        updated_at=_utc(row["updated_at"]),
        finished_at=_utc(row["finished_at"]),
    )
