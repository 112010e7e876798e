"""The schema as ``create_all`` made it before migrations (every table of the store).

Each table and index is created only where it is missing, so a store made by ``create_all``
before Alembic (a SQLite ``state.db`` of an older hubserve) is adopted as it is, even one whose
tables were made by only some of the stores.

Revision ID: 0001
Revises:
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision: str | None = None
branch_labels: str | None = None
depends_on: str | None = None


def _create_table(name: str, *elements: Any) -> None:
    if not sa.inspect(op.get_bind()).has_table(name):
        op.create_table(name, *elements)


def _create_index(name: str, table: str, columns: list[str], unique: bool = False) -> None:
    if name not in {index["name"] for index in sa.inspect(op.get_bind()).get_indexes(table)}:
        op.create_index(name, table, columns, unique=unique)


def upgrade() -> None:
    _create_table(
        "async_inferences",
        sa.Column("endpoint", sa.String(length=63), nullable=False),
        sa.Column("id", sa.String(length=64), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("input_location", sa.Text(), nullable=False),
        sa.Column("input_owned", sa.Boolean(), nullable=False),
        sa.Column("content_type", sa.Text(), nullable=False),
        sa.Column("accept", sa.Text(), nullable=False),
        sa.Column("output_location", sa.Text(), nullable=False),
        sa.Column("failure_location", sa.Text(), nullable=False),
        sa.Column("timeout_s", sa.Integer(), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("max_attempts", sa.Integer(), nullable=False),
        sa.Column("error_type", sa.Text(), nullable=True),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("output_content_type", sa.Text(), nullable=True),
        sa.Column("owner", sa.String(length=64), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("finished_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("endpoint", "id"),
    )
    _create_index("ix_async_inferences_status", "async_inferences", ["status", "endpoint", "created_at"], unique=False)
    _create_table(
        "audit_log",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("token_id", sa.String(length=32), nullable=False),
        sa.Column("token_name", sa.String(length=200), nullable=True),
        sa.Column("method", sa.String(length=10), nullable=False),
        sa.Column("path", sa.String(length=2048), nullable=False),
        sa.Column("action", sa.String(length=100), nullable=True),
        sa.Column("target", sa.String(length=300), nullable=True),
        sa.Column("source", sa.String(length=100), nullable=True),
        sa.Column("request_id", sa.String(length=200), nullable=False),
        sa.Column("status", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    _create_index("ix_audit_log_at", "audit_log", ["at"], unique=False)
    _create_index("ix_audit_log_target", "audit_log", ["target"], unique=False)
    _create_table(
        "batch_job_files",
        sa.Column("job_id", sa.String(length=40), nullable=False),
        sa.Column("idx", sa.Integer(), nullable=False),
        sa.Column("url", sa.Text(), nullable=False),
        sa.Column("name", sa.Text(), nullable=False),
        sa.Column("records", sa.Integer(), nullable=True),
        sa.Column("done", sa.Integer(), nullable=False),
        sa.Column("failed", sa.Integer(), nullable=False),
        sa.Column("offset", sa.Integer(), nullable=False),
        sa.Column("line", sa.Integer(), nullable=False),
        sa.Column("out_bytes", sa.Integer(), nullable=False),
        sa.Column("err_bytes", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("job_id", "idx"),
    )
    _create_table(
        "batch_jobs",
        sa.Column("id", sa.String(length=40), nullable=False),
        sa.Column("request", sa.Text(), nullable=False),
        sa.Column("endpoint_spec", sa.Text(), nullable=False),
        sa.Column("desired", sa.String(length=16), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("reason", sa.Text(), nullable=True),
        sa.Column("records_total", sa.Integer(), nullable=True),
        sa.Column("records_done", sa.Integer(), nullable=False),
        sa.Column("records_failed", sa.Integer(), nullable=False),
        sa.Column("runs", sa.Integer(), nullable=False),
        sa.Column("run_started_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("run_start_done", sa.Integer(), nullable=False),
        sa.Column("run_ended_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("finished_at", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("id"),
    )
    _create_table(
        "endpoints",
        sa.Column("name", sa.String(length=63), nullable=False),
        sa.Column("spec", sa.Text(), nullable=False),
        sa.Column("desired", sa.String(length=16), nullable=False),
        sa.Column("state", sa.String(length=16), nullable=False),
        sa.Column("reason", sa.Text(), nullable=True),
        sa.Column("notes", sa.Text(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("name"),
    )
    _create_table(
        "sagemaker_endpoint_bindings",
        sa.Column("endpoint", sa.String(length=63), nullable=False),
        sa.Column("config", sa.String(length=63), nullable=False),
        sa.PrimaryKeyConstraint("endpoint"),
    )
    _create_table(
        "sagemaker_endpoint_configs",
        sa.Column("name", sa.String(length=63), nullable=False),
        sa.Column("definition", sa.Text(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("name"),
    )
    _create_table(
        "sagemaker_models",
        sa.Column("name", sa.String(length=63), nullable=False),
        sa.Column("definition", sa.Text(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("name"),
    )
    _create_table(
        "sagemaker_tags",
        sa.Column("resource", sa.String(length=128), nullable=False),
        sa.Column("key", sa.String(length=128), nullable=False),
        sa.Column("value", sa.String(length=256), nullable=False),
        sa.PrimaryKeyConstraint("resource", "key"),
    )
    _create_table(
        "tokens",
        sa.Column("id", sa.String(length=32), nullable=False),
        sa.Column("salt", sa.String(length=64), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("scopes", sa.Text(), nullable=False),
        sa.Column("endpoints", sa.Text(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("created_by", sa.String(length=32), nullable=True),
        sa.Column("last_used_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("revoked_at", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("id"),
    )


def downgrade() -> None:
    for index, table in (
        ("ix_async_inferences_status", "async_inferences"),
        ("ix_audit_log_at", "audit_log"),
        ("ix_audit_log_target", "audit_log"),
    ):
        op.drop_index(index, table_name=table)
    for table in (
        "tokens",
        "sagemaker_tags",
        "sagemaker_models",
        "sagemaker_endpoint_configs",
        "sagemaker_endpoint_bindings",
        "endpoints",
        "batch_jobs",
        "batch_job_files",
        "audit_log",
        "async_inferences",
    ):
        op.drop_table(table)
