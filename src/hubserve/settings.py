"""Server settings: flags of `hubserve serve`, or HUBSERVE_* environment variables."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict


class Settings(BaseSettings):
    """One server's configuration; every field can be set as HUBSERVE_<FIELD>."""

    model_config = SettingsConfigDict(env_prefix="HUBSERVE_", extra="ignore")

    home: Path = Field(default=Path("~/.hubserve"), description="State folder: state.db, logs, caches.")
    host: str = "127.0.0.1"
    port: int = 8080
    token: str | None = Field(default=None, description="Bearer token required by the management API.", repr=False)
    model_roots: list[Path] = Field(
        default_factory=list, description="When set, local model folders must lie under one of these."
    )
    database_url: str | None = Field(
        default=None, description="SQLAlchemy URL of the state store; default: SQLite at <home>/state.db."
    )
    hub_cache: Path | None = Field(default=None, description="Hub cache folder; default: huggingface_hub's own.")
    max_payload_bytes: int = Field(default=6 * 1024 * 1024, description="Largest invocation body (SageMaker: 6 MB).")
    cold_start_timeout_s: float = Field(default=180.0, description="How long a request is held waiting for a replica.")
    replica_start_timeout_s: float = Field(default=600.0, description="How long a replica may take to load.")
    serverless_slots_per_replica: int = Field(
        default=4, ge=1, description="Concurrent invocations one serverless replica takes before another starts."
    )
    scale_down_window_s: float = Field(default=60.0, description="Stabilisation window before replicas are removed.")
    autoscale_interval_s: float = Field(default=0.25, description="How often the autoscaler looks at every endpoint.")
    zygote: bool = Field(
        default=True, description="Fork replicas from a process that imported torch once (sub-second cold starts)."
    )
    storage_roots: list[Path] = Field(
        default_factory=list,
        description="Local folders async inference and batch jobs may read and write, besides <home>/storage.",
    )
    s3_endpoint_url: str | None = Field(
        default=None, description="S3 API endpoint for s3:// locations (MinIO, moto); default: AWS's own."
    )
    drain_timeout_s: float = Field(default=60.0, description="How long a retiring replica may finish its requests.")
    async_max_payload_bytes: int = Field(
        default=1024 * 1024 * 1024, description="Largest async inference payload (SageMaker: 1 GB), streamed to storage."
    )
    async_max_attempts: int = Field(
        default=3, ge=1, description="Attempts an async inference gets (replica or server deaths) before it fails."
    )
    async_poll_interval_s: float = Field(
        default=0.5, description="How often the async dispatcher looks at the queue when nothing wakes it."
    )

    @property
    def home_dir(self) -> Path:
        return self.home.expanduser().resolve()

    @property
    def store_url(self) -> str:
        return self.database_url or f"sqlite:///{self.home_dir / 'state.db'}"

    @property
    def storage_root(self) -> Path:
        """Where results go when a request names no output location; always an allowed root."""
        return self.home_dir / "storage"

    @property
    def base_url(self) -> str:
        return f"http://{self.host}:{self.port}"
