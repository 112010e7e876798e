"""Server settings: flags of `hubserve serve`, or HUBSERVE_* environment variables."""

from __future__ import annotations

import ipaddress
import socket
from pathlib import Path
from typing import Literal

from pydantic import Field, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict


class Settings(BaseSettings):
    """One server's configuration; every field can be set as HUBSERVE_<FIELD>."""

    model_config = SettingsConfigDict(env_prefix="HUBSERVE_", extra="ignore")

    home: Path = Field(default=Path("~/.hubserve"), description="State folder: state.db, logs, caches.")
    host: str = "127.0.0.1"
    port: int = 8080
    token: str | None = Field(default=None, description="Bearer token required by the management API.", repr=False)
    public_url: str | None = Field(
        default=None,
        description="URL clients reach this server at (a proxy's, say), used in describe's url; "
        "default: http://<host>:<port> of the bind, 0.0.0.0 as the machine's hostname.",
    )
    advertise_url: str | None = Field(
        default=None,
        description="URL the other servers of a shared store reach this one at, to forward invocations of the "
        "endpoints it holds; default: http://<host>:<port> of the bind, 0.0.0.0 as the machine's hostname "
        "(not public_url, which usually names the load balancer in front of every server).",
    )

    @field_validator("advertise_url")
    @classmethod
    def _advertise_url(cls, value: str | None) -> str | None:
        if value and (not value.startswith(("http://", "https://")) or any(char.isspace() for char in value)):
            raise ValueError(f"advertise_url must be an http:// or https:// URL, not {value!r}")
        return value

    private_networks: list[str] = Field(
        default_factory=list,
        description="Networks (CIDRs) besides loopback that may invoke endpoints with access 'private'.",
    )

    @field_validator("private_networks")
    @classmethod
    def _cidrs(cls, value: list[str]) -> list[str]:
        return [str(ipaddress.ip_network(cidr.strip(), strict=False)) for cidr in value]  # ValueError: not a CIDR

    insecure_no_auth: bool = Field(
        default=False, description="Allow a non-loopback bind without a token: anyone who reaches it is admin."
    )
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
    replica_cpu_oversubscription: float = Field(
        default=2.0, gt=0, description="Replicas' vCPUs together may reach this many times the machine's cores; "
        "past that (or past its memory), requests wait in the running replicas' batchers (local backend only).",
    )
    scale_down_window_s: float = Field(default=60.0, description="Stabilisation window before replicas are removed.")
    autoscale_interval_s: float = Field(default=0.25, description="How often the autoscaler looks at every endpoint.")
    backend: Literal["local", "ray"] = Field(
        default="local", description="Where replicas run: local processes, or Ray actors on a Ray cluster."
    )
    ray_address: str | None = Field(
        default=None, description="Ray cluster to join (with backend ray); default: start a local Ray instance."
    )
    zygote: bool = Field(
        default=True, description="Fork replicas from a process that imported torch once (sub-second cold starts)."
    )
    model_archive_max_bytes: int = Field(
        default=20 * 1024**3,
        ge=1,
        description="Most bytes a SageMaker model.tar.gz may extract to (and never past the free disk).",
    )
    model_archive_max_members: int = Field(default=100_000, ge=1, description="Most files a model.tar.gz may hold.")
    replica_user: str | None = Field(
        default=None,
        description="User replicas run as; default: 'nobody' when the server runs as root. '' keeps the server's user.",
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
        default=1024 * 1024 * 1024,
        description="Largest async inference payload (SageMaker: 1 GB), streamed to storage.",
    )
    async_max_attempts: int = Field(
        default=3, ge=1, description="Attempts an async inference gets (replica or server deaths) before it fails."
    )
    async_poll_interval_s: float = Field(
        default=0.5, description="How often the async dispatcher looks at the queue when nothing wakes it."
    )
    max_request_body_bytes: int = Field(
        default=1024 * 1024,
        ge=1,
        description="Largest body of a non-invocation route (management JSON, SageMaker control plane, /v2).",
    )
    header_timeout_s: float = Field(
        default=10.0, gt=0, description="A request's line and headers must arrive within this, else 408 (slowloris)."
    )
    max_header_bytes: int = Field(
        default=64 * 1024, ge=1024, description="Largest request line plus headers; over it is a 431."
    )
    body_timeout_s: float = Field(
        default=10.0, gt=0, description="Grace for a request body; after it the body must keep min_body_rate_bytes_s."
    )
    min_body_rate_bytes_s: int = Field(
        default=16 * 1024, ge=1, description="Slowest average body upload accepted after body_timeout_s, else 408."
    )
    max_batch_inputs: int = Field(
        default=1024, ge=1, description="Most inputs one invocation may carry; split bigger batches into requests."
    )

    @property
    def home_dir(self) -> Path:
        return self.home.expanduser().resolve()

    @property
    def store_url(self) -> str:
        return self.database_url or f"sqlite:///{self.home_dir / 'state.db'}"

    @property
    def sagemaker_models_dir(self) -> Path:
        """Where SageMaker model archives are extracted (api/sagemaker/artifacts.py): the server's own files."""
        return self.home_dir / "sagemaker" / "models"

    @property
    def allowed_model_roots(self) -> list[Path]:
        """The roots replicas confine local models to: the configured ones plus the extracted archives; [] = anywhere."""
        return [*self.model_roots, self.sagemaker_models_dir] if self.model_roots else []

    @property
    def storage_root(self) -> Path:
        """Where results go when a request names no output location; always an allowed root."""
        return self.home_dir / "storage"

    @property
    def base_url(self) -> str:
        return f"http://{self.host}:{self.port}"

    @property
    def public_base_url(self) -> str:
        """The URL describe reports (``public_url``, else the bind address); never a request's Host header."""
        if self.public_url:
            return self.public_url.rstrip("/")
        return self._bind_url

    @property
    def advertised_base_url(self) -> str:
        """The URL other servers forward invocations to: ``advertise_url``, else the bind address.

        Never ``public_url``: behind a load balancer that is the balancer's address, and a request
        forwarded there could land on any server instead of the holder.
        """
        if self.advertise_url:
            return self.advertise_url.rstrip("/")
        return self._bind_url

    @property
    def _bind_url(self) -> str:
        host = self.host
        if host in ("0.0.0.0", "::", ""):
            host = socket.gethostname() or "127.0.0.1"
        elif ":" in host:
            host = f"[{host}]"  # IPv6 literal
        return f"http://{host}:{self.port}"
