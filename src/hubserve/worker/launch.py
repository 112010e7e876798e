"""What a replica is started with: one serialized structure, built by control, read by the replica.

Control fills it from the endpoint's spec and the server's settings; the backend carries it to
wherever the replica runs (one JSON argument for a local process; an actor's argument on Ray);
the replica decodes it and does the rest itself: it resolves the model source (a local folder or
a Hub repo through huggingface_hub, offline cache honoured), infers the task when none is given,
and loads the model. Nothing in it is a path only the server's machine knows, except the folders
named for that machine's own replicas (model roots, caches).
"""

from __future__ import annotations

import resource

import msgspec


class ReplicaLaunch(msgspec.Struct, frozen=True, kw_only=True):
    """Everything a replica needs to load and serve one endpoint's model."""

    endpoint: str  # the endpoint (or batch job) it serves; names its logs folder
    source: str  # local folder or Hub repo id (models.sources)
    revision: str | None = None
    task: str | None = None  # None: inferred by the replica from the model's config
    allowed_roots: list[str] = msgspec.field(default_factory=list)  # local sources must lie under one (when set)
    hub_cache: str | None = None  # huggingface_hub cache folder; None: its default
    custom_code: bool = False
    dtype: str = "auto"
    device: str = "cpu"
    threads: int = 1
    runtime: str = "torch"  # the model runtime: torch | onnx | onnx-int8 | auto
    runtime_cache: str | None = None  # where exported/quantized model runtimes are cached, keyed by content
    allow_missing_weights: bool = False  # serve a checkpoint that lacks weights of the task's model (random)
    max_batch_size: int | None = None
    max_batch_tokens: int | None = None
    # Generation (spec ``generation``): the max_new_tokens a request gets by default and the most it may ask.
    default_max_new_tokens: int = 256
    max_new_tokens_limit: int = 2048
    env: dict[str, str] = msgspec.field(default_factory=dict)
    # fsspec options for payload URLs the replica opens itself (s3:// bodies): {"s3": {"endpoint_url": ...}}
    storage_options: dict[str, dict[str, str]] = msgspec.field(default_factory=dict)
    # The replica's hard memory backstop in MB (RLIMIT_DATA, set before the model loads); None: no backstop.
    memory_backstop_mb: int | None = None
    # A multi-model endpoint (worker/model_host.py): ``source`` is a folder of model folders, loaded on demand.
    multi_model: bool = False
    models_memory_mb: int | None = None  # what its loaded models may hold; None: from memory_limit_mb
    memory_limit_mb: int | None = None  # the memory size the memory police holds the replica to
    # scikit-learn models (models/tabular.py): the replica starts without torch; skops types to trust beyond the
    # defaults; pickle/joblib files only when the endpoint opted in.
    framework: str = "pytorch"
    trusted_types: list[str] = msgspec.field(default_factory=list)
    allow_pickle: bool = False


def encode_launch(launch: ReplicaLaunch) -> str:
    return msgspec.json.encode(launch).decode()


def decode_launch(text: str | bytes) -> ReplicaLaunch:
    return msgspec.json.decode(text, type=ReplicaLaunch)


def apply_memory_backstop(limit_mb: int | None) -> None:
    """Cap the replica's private writable memory (RLIMIT_DATA) before the model loads.

    The memory police watches resident memory against the endpoint's memory size every tick; this
    is the backstop for what is faster than a tick: an allocation past it fails at once with a
    MemoryError in the handler (the request fails, the replica lives) instead of taking the machine.
    RLIMIT_DATA, not RLIMIT_AS: torch and mmap'd safetensors map far more address space than they
    use (a tiny replica maps about 1.2 GB for 0.5 GB resident), read-only file mappings and
    PROT_NONE reservations do not count towards it, anonymous writable memory does.
    """
    if limit_mb is None:
        return
    wanted = limit_mb * 1024 * 1024
    _soft, hard = resource.getrlimit(resource.RLIMIT_DATA)
    if hard != resource.RLIM_INFINITY:
        wanted = min(wanted, hard)
    resource.setrlimit(resource.RLIMIT_DATA, (wanted, hard))
