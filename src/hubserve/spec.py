"""Endpoint, model and compute specs: the document a user writes (YAML or JSON).

Validation, defaults and limits live here and nowhere else. A leaf module: it imports
only the task vocabulary.
"""

from __future__ import annotations

import enum
import re
from dataclasses import dataclass
from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    GetCoreSchemaHandler,
    GetJsonSchemaHandler,
    field_validator,
    model_validator,
)
from pydantic.json_schema import JsonSchemaValue
from pydantic_core import CoreSchema, PydanticCustomError, core_schema
from pydantic_core import ValidationError as PydanticCoreValidationError

from hubserve.tasks import normalize_task

NAME_PATTERN = re.compile(r"^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$")
REDACTED = "***"  # what describe, list and export show for an endpoint secret's value
MEMORY_SIZES_MB = (1024, 2048, 3072, 4096, 5120, 6144)
_MEMORY_CHOICES = f"{', '.join(map(str, MEMORY_SIZES_MB))} (1024..6144 in steps of 1024)"

INSTANCE_SIZES: dict[str, dict[str, Any]] = {
    # Mirrors Inference Endpoints' CPU sizes; GPU sizes are accepted where a GPU exists.
    "cpu-small": {"vcpus": 1, "memory_mb": 2048, "accelerator": "cpu"},
    "cpu-medium": {"vcpus": 2, "memory_mb": 4096, "accelerator": "cpu"},
    "cpu-large": {"vcpus": 4, "memory_mb": 8192, "accelerator": "cpu"},
    "cpu-xlarge": {"vcpus": 8, "memory_mb": 16384, "accelerator": "cpu"},
    "gpu-small": {"vcpus": 4, "memory_mb": 16384, "accelerator": "gpu"},
    "gpu-medium": {"vcpus": 8, "memory_mb": 32768, "accelerator": "gpu"},
    "gpu-large": {"vcpus": 16, "memory_mb": 65536, "accelerator": "gpu"},
}


class EndpointState(str, enum.Enum):
    """States an endpoint moves through; names match Inference Endpoints'."""

    PENDING = "pending"
    INITIALIZING = "initializing"
    RUNNING = "running"
    UPDATING = "updating"
    UPDATE_FAILED = "updateFailed"
    PAUSING = "pausing"  # hubserve's own: paused, its replicas still finishing what they hold
    PAUSED = "paused"
    FAILED = "failed"
    DELETING = "deleting"
    SCALED_TO_ZERO = "scaledToZero"


@dataclass(frozen=True)
class _WholeNumber:
    """An int whose type error names the allowed values, as its range error does: ``memory_mb: 4GB``
    is answered with what to write instead of pydantic's "Input should be a valid integer"."""

    allowed: str  # completes "must be a whole number ..."
    prefix: str = ""  # the field's name, where the field's other messages start with it

    def _typed(self, value: Any, handler: core_schema.ValidatorFunctionWrapHandler) -> Any:
        try:
            return handler(value)
        except PydanticCoreValidationError:
            raise PydanticCustomError(
                "whole_number", "{prefix}must be a whole number {allowed}; got {got}",
                {"prefix": self.prefix, "allowed": self.allowed, "got": "null" if value is None else repr(value)},
            ) from None  # fmt: skip

    def __get_pydantic_core_schema__(self, source: Any, handler: GetCoreSchemaHandler) -> CoreSchema:
        return core_schema.no_info_wrap_validator_function(self._typed, handler(source))


@dataclass(frozen=True)
class _Between:
    """An int range check whose messages (a number out of range, or not a number) name the whole
    allowed range, not just the broken bound; the JSON schema shows both bounds (``minimum``, ``maximum``)."""

    low: int
    high: int

    def _check(self, value: int) -> int:
        if not self.low <= value <= self.high:
            raise ValueError(f"must be between {self.low} and {self.high} (got {value})")
        return value

    def __get_pydantic_core_schema__(self, source: Any, handler: GetCoreSchemaHandler) -> CoreSchema:
        typed = _WholeNumber(f"between {self.low} and {self.high}")
        return core_schema.no_info_after_validator_function(self._check, typed.__get_pydantic_core_schema__(source, handler))

    def __get_pydantic_json_schema__(self, schema: CoreSchema, handler: GetJsonSchemaHandler) -> JsonSchemaValue:
        json_schema = handler(schema)
        json_schema.update(minimum=self.low, maximum=self.high)
        return json_schema


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


_REVISION = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.\-/]{0,254}")


class ModelSpec(_Strict):
    """Where the model comes from and what it does."""

    source: str = Field(
        description="A local folder (absolute path, ./relative or file://) or a Hub repo id such as org/name."
    )
    revision: str | None = Field(default=None, description="Hub branch, tag or commit; Hub sources only.")
    task: str | None = Field(default=None, description="Inferred from the model's config when omitted.")
    framework: Literal["pytorch", "sklearn"] = Field(
        default="pytorch",
        description="pytorch (transformers) or sklearn; the server sets sklearn for a folder in the Hub's "
        "scikit-learn layout (config.json with a sklearn section), whose replicas start without torch.",
    )
    dtype: Literal["auto", "float32", "float16", "bfloat16"] = "auto"
    runtime: Literal["torch", "onnx", "onnx-int8", "auto"] = Field(
        default="torch",
        description="torch; onnx (ONNX Runtime on an export cached per model); onnx-int8 (plus dynamic int8 "
        "quantization); auto (the fastest the model supports, timed on first deployment).",
    )
    allow_missing_weights: bool = Field(
        default=False,
        description="Serve even when the checkpoint lacks weights of the task's model (its head), which "
        "transformers then initialises at random; off, such a deployment fails naming the missing weights.",
    )
    trusted_types: list[str] = Field(
        default_factory=list,
        description="scikit-learn models saved with skops: types to trust beyond skops' defaults (loading can run "
        "their code); a model that needs others is refused with their list.",
    )
    multi_model: bool = Field(
        default=False,
        description="A multi-model endpoint: source is a folder of model folders (SageMaker's MultiModel mode). "
        "A request names its model (TargetModel, X-Amzn-SageMaker-Target-Model, /endpoints/{name}/models/{model}); "
        "each loads on its first call and stays loaded while models_memory_mb allows, least recently used "
        "unloaded first. Models added to the folder are served without redeploying.",
    )
    models_memory_mb: Annotated[int, _Between(64, 1_048_576)] | None = Field(
        default=None,
        description="Multi-model endpoints: the memory (MB) one replica fills with loaded models; default: the "
        "endpoint's memory size less what the replica holds with none loaded, less 10% headroom.",
    )

    @field_validator("revision")
    @classmethod
    def _revision_is_a_ref(cls, value: str | None) -> str | None:
        # A branch, tag or commit as git names them: no '..', no leading '/' or '-', no control or
        # special characters, so a revision can never walk out of the Hub cache's refs folder.
        if value is not None and (not _REVISION.fullmatch(value) or ".." in value or "//" in value or value.endswith(("/", ".lock"))):
            raise ValueError(f"revision {value!r} is not a valid branch, tag or commit name")
        return value

    @field_validator("source")
    @classmethod
    def _source_not_empty(cls, value: str) -> str:
        if not value.strip():
            raise ValueError("source must name a local folder or a Hub repo id")
        return value.strip()

    @field_validator("task")
    @classmethod
    def _known_task(cls, value: str | None) -> str | None:
        return None if value is None else normalize_task(value)

    @model_validator(mode="after")
    def _memory_for_many(self) -> ModelSpec:
        if self.models_memory_mb is not None and not self.multi_model:
            raise ValueError("models_memory_mb applies to multi-model endpoints only; set multi_model: true or remove it")
        return self


class ServerlessCompute(_Strict):
    """Scale-to-zero compute sized by memory, as SageMaker Serverless Inference."""

    type: Literal["serverless"] = "serverless"
    memory_mb: Annotated[int, _WholeNumber(f"of MB, one of {_MEMORY_CHOICES}", "memory_mb ")] = Field(
        default=2048, description="1024..6144 in steps of 1024; vCPUs follow memory."
    )
    max_concurrency: Annotated[int, _Between(1, 200)] = 5
    provisioned_concurrency: Annotated[int, _Between(0, 200)] = 0
    idle_timeout_s: Annotated[int, _Between(1, 86400)] = 300

    @field_validator("memory_mb")
    @classmethod
    def _memory_size(cls, value: int) -> int:
        if value not in MEMORY_SIZES_MB:
            raise ValueError(f"memory_mb must be one of {_MEMORY_CHOICES}")
        return value

    @model_validator(mode="after")
    def _provisioned_within_max(self) -> ServerlessCompute:
        if self.provisioned_concurrency > self.max_concurrency:
            raise ValueError(
                f"provisioned_concurrency ({self.provisioned_concurrency}) must be between 0 and "
                f"max_concurrency ({self.max_concurrency})"
            )
        return self


class DedicatedCompute(_Strict):
    """Always-on replicas of a fixed instance size, as Inference Endpoints."""

    type: Literal["dedicated"] = "dedicated"
    instance: str = Field(default="cpu-small", description="One of " + ", ".join(INSTANCE_SIZES))
    min_replicas: Annotated[int, _Between(0, 64)] = 1
    max_replicas: Annotated[int, _Between(1, 64)] = 1
    target_concurrency: Annotated[int, _Between(1, 1000)] = 4
    scale_to_zero_after_s: Annotated[int, _Between(1, 86400)] = 900

    @field_validator("instance")
    @classmethod
    def _known_instance(cls, value: str) -> str:
        if value not in INSTANCE_SIZES:
            raise ValueError(f"unknown instance '{value}'; choose one of {', '.join(INSTANCE_SIZES)}")
        return value

    @model_validator(mode="after")
    def _min_within_max(self) -> DedicatedCompute:
        if self.min_replicas > self.max_replicas:
            raise ValueError(f"min_replicas ({self.min_replicas}) must not exceed max_replicas ({self.max_replicas})")
        return self


Compute = Annotated[ServerlessCompute | DedicatedCompute, Field(discriminator="type")]


class BatchingSpec(_Strict):
    """Adaptive batching in the replica: requests that arrive while it is busy run together."""

    max_batch_size: Annotated[int, _Between(1, 1024)] | None = Field(
        default=None, description="Sequences per batch (a request with 32 inputs counts 32); default per runtime."
    )
    max_batch_tokens: Annotated[int, _Between(1, 1_000_000)] | None = Field(
        default=None, description="Tokens per batch (sequences x their length); default per runtime."
    )


class GenerationSpec(_Strict):
    """Text generation on a generative endpoint: how many new tokens a request gets and may ask for."""

    max_new_tokens_limit: Annotated[int, _Between(1, 1_000_000)] = Field(
        default=2048,
        description="The most max_new_tokens a request may ask; over it is a 422 (GenerationLimitExceeded).",
    )
    default_max_new_tokens: Annotated[int, _Between(1, 1_000_000)] = Field(
        default=256, description="max_new_tokens of a request that names none (at most max_new_tokens_limit)."
    )

    @model_validator(mode="after")
    def _default_within_limit(self) -> GenerationSpec:
        if self.default_max_new_tokens > self.max_new_tokens_limit:
            raise ValueError(
                f"default_max_new_tokens ({self.default_max_new_tokens}) must not exceed "
                f"max_new_tokens_limit ({self.max_new_tokens_limit})"
            )
        return self


class AsyncNotificationSpec(_Strict):
    """Webhooks called (POST JSON, with retries) when an async inference succeeds or fails."""

    success_url: str | None = Field(default=None, description="http(s) URL told of each success.")
    error_url: str | None = Field(default=None, description="http(s) URL told of each failure or expiry.")

    @field_validator("success_url", "error_url")
    @classmethod
    def _http_url(cls, value: str | None) -> str | None:
        if value is not None and not re.match(r"^https?://[^\s/]+", value):
            raise ValueError("must be an http:// or https:// URL")
        return value


class AsyncInferenceSpec(_Strict):
    """Asynchronous inference settings of one endpoint (POST /endpoints/{name}/async-invocations)."""

    output_location: str | None = Field(
        default=None,
        description="Folder or s3:// prefix for results (<id>.out) and failures (<id>.error.json); "
        "default: <home>/storage/async/<endpoint>.",
    )
    notification: AsyncNotificationSpec | None = None
    max_concurrent_invocations_per_replica: Annotated[int, _Between(1, 1000)] | None = Field(
        default=None, description="Queued inferences sent to one replica at once; default: its concurrency slots."
    )


class EndpointSpec(_Strict):
    """The unit a user creates, updates, invokes, pauses, resumes and deletes."""

    name: str = Field(description="DNS-safe: lowercase letters, digits and '-', 1..63 characters.")
    model: ModelSpec
    compute: Compute = Field(default_factory=ServerlessCompute)
    batching: BatchingSpec = Field(default_factory=BatchingSpec)
    generation: GenerationSpec | None = Field(
        default=None, description="Text generation limits (generative tasks); default: 256 new tokens, at most 2048."
    )
    env: dict[str, str] = Field(default_factory=dict, description="Environment variables for the replicas.")
    secrets: dict[str, str] = Field(
        default_factory=dict,
        description=f"Environment variables for the replicas that are never shown: describe, list and export "
        f"name them with the value {REDACTED!r}; an update that sends {REDACTED!r} or leaves them out keeps them "
        f"(PATCH null removes them).",
    )
    custom_code: bool = Field(
        default=False, description="Run the folder's handler.py or code/inference.py (off: they are ignored)."
    )
    allow_pickle: bool = Field(
        default=False,
        description="Load scikit-learn models saved with pickle or joblib, which run code from the file (off: refused; "
        "save with skops instead). The same opt-in as custom_code.",
    )
    async_inference: AsyncInferenceSpec | None = None
    invocation_timeout_s: Annotated[int, _Between(1, 3600)] = Field(
        default=60,
        description="Wall-clock limit of one sync or batch invocation in seconds (SageMaker's sync limit by default), "
        "counted from its hand-over to a replica; a stream's limit is the wait for each part. Past it: 504, and the "
        "replica is killed and replaced. Async inferences use their own InvocationTimeoutSeconds.",
    )
    access: Literal["public", "authenticated", "protected", "private"] | None = Field(
        default=None,
        description="Who may invoke (Inference Endpoints' endpoint type): 'public' anyone, no token; 'protected' "
        "(= 'authenticated', the default) a token with the invoke scope for this endpoint; 'private' such a token, "
        "and only from loopback or the server's --private-network CIDRs. A server without a token checks nothing.",
    )

    @model_validator(mode="before")
    @classmethod
    def _compute_type_defaults_to_serverless(cls, data: Any) -> Any:
        if isinstance(data, dict) and isinstance(data.get("compute"), dict) and "type" not in data["compute"]:
            data = {**data, "compute": {"type": "serverless", **data["compute"]}}
        return data

    @field_validator("name")
    @classmethod
    def _dns_safe(cls, value: str) -> str:
        if not NAME_PATTERN.fullmatch(value):
            raise ValueError(
                "name must be DNS-safe: 1-63 lowercase letters, digits or '-', starting and ending with a letter or digit"
            )
        return value


def redacted(spec: EndpointSpec) -> dict[str, Any]:
    """The spec as JSON for anyone to read: every secret's value replaced by ``REDACTED``."""
    data = spec.model_dump(mode="json")
    data["secrets"] = dict.fromkeys(spec.secrets, REDACTED)
    return data


def keep_secrets(spec: EndpointSpec, current: EndpointSpec, sent: bool = True) -> EndpointSpec:
    """``spec`` as an update of ``current``: a secret sent back as ``REDACTED`` keeps its stored value,
    and an update that does not send ``secrets`` at all (``sent`` false) keeps every stored secret."""
    if not sent:
        return spec.model_copy(update={"secrets": dict(current.secrets)})
    if REDACTED not in spec.secrets.values():
        return spec
    kept = {}
    for name, value in spec.secrets.items():
        if value == REDACTED:
            if name not in current.secrets:
                raise ValueError(f"secrets.{name}: '{REDACTED}' stands for a stored value, and none is stored")
            value = current.secrets[name]
        kept[name] = value
    return spec.model_copy(update={"secrets": kept})


def merge_patch(base: dict[str, Any], patch: dict[str, Any]) -> dict[str, Any]:
    """JSON merge patch (RFC 7386): what PATCH /v1/endpoints/{name} applies to a spec."""
    merged = dict(base)
    for key, value in patch.items():
        if value is None:
            merged.pop(key, None)
        elif isinstance(value, dict):
            target = merged.get(key)
            merged[key] = merge_patch(target if isinstance(target, dict) else {}, value)
        else:
            merged[key] = value
    return merged


def merge_patch_for(current: dict[str, Any], wanted: dict[str, Any]) -> dict[str, Any]:
    """The JSON merge patch that turns ``current`` into ``wanted`` (``merge_patch``'s inverse): a key
    ``wanted`` lacks is sent as null, which PATCH reads as "back to the default"."""
    patch: dict[str, Any] = {key: None for key in current if key not in wanted}
    for key, value in wanted.items():
        before = current.get(key)
        if isinstance(value, dict) and isinstance(before, dict):
            inner = merge_patch_for(before, value)
            if inner:
                patch[key] = inner
        elif value != before or key not in current:
            patch[key] = value
    return patch


def vcpus_for(compute: ServerlessCompute | DedicatedCompute, machine_cores: int) -> int:
    """vCPUs a replica gets, capped by the machine: serverless follows memory like Lambda (1 per 1769 MB)."""
    if isinstance(compute, ServerlessCompute):
        wanted = max(1, round(compute.memory_mb / 1769))
    else:
        wanted = INSTANCE_SIZES[compute.instance]["vcpus"]
    return max(1, min(wanted, machine_cores))


def device_for(compute: ServerlessCompute | DedicatedCompute) -> str:
    """torch device of the replicas: GPU instance sizes run on CUDA, everything else on the CPU."""
    if isinstance(compute, DedicatedCompute) and INSTANCE_SIZES[compute.instance]["accelerator"] == "gpu":
        return "cuda"
    return "cpu"
