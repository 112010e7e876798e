"""What a user asks of a batch transform job (``POST /v1/batch-jobs``), checked field by field.

The names follow SageMaker's CreateTransformJob where one exists: ``split_type`` (SplitType),
``content_type`` (ContentType), ``join_source`` (DataProcessing.JoinSource), ``batch_size`` for
MaxPayload's role (records a replica runs as one batch) and ``concurrency`` for
MaxConcurrentTransforms (chunks in flight). Output is always assembled by line.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

SPLIT_TYPES = ("line", "none")
CONTENT_TYPES = ("application/jsonlines", "text/csv", "text/plain")
STATUSES = ("running", "stopping", "stopped", "completed", "failed")
FINAL_STATUSES = ("completed", "failed", "stopped")

# What a file's name says about its records when the request names no content type.
_BY_SUFFIX = {".csv": "text/csv", ".txt": "text/plain", ".text": "text/plain"}


class BatchJobRequest(BaseModel):
    """One batch transform job: which model, which data, how to split and assemble it."""

    model_config = ConfigDict(extra="forbid")

    endpoint: str | None = Field(default=None, description="Run the model of this endpoint (on the job's own replicas).")
    model: str | None = Field(default=None, description="Or a model: local folder or Hub repo id.")
    task: str | None = Field(default=None, description="With model: the task (inferred from the config when omitted).")
    runtime: Literal["torch", "onnx", "onnx-int8", "auto"] | None = Field(
        default=None, description="With model: the runtime (default torch); an endpoint's job uses the endpoint's."
    )
    instance: str = Field(default="cpu-medium", description="With model: the replica's size (vCPUs = torch threads).")
    input: str = Field(description="A file, a folder of files, or an s3:// prefix.")
    output: str = Field(description="Folder or s3:// prefix for one <input file>.out per input file.")
    batch_size: int | None = Field(
        default=None, ge=1, le=1024, description="Records a replica runs as one batch; default: the runtime's max_batch_size."
    )
    concurrency: int = Field(default=2, ge=1, le=64, description="Chunks of batch_size records in flight to the replica.")
    split_type: Literal["line", "none"] = Field(default="line", description="line: each line a record; none: each file one record.")
    content_type: Literal["application/jsonlines", "text/csv", "text/plain"] | None = Field(
        default=None, description="How records read; default from the file suffix (.csv, .txt), else application/jsonlines."
    )
    join_source: Literal["none", "input"] = Field(default="none", description='input: write {"input", "output"} per line.')
    max_failures: int = Field(default=0, ge=0, description="Failed records tolerated; one more fails the job.")

    @model_validator(mode="after")
    def _one_model(self) -> BatchJobRequest:
        if (self.endpoint is None) == (self.model is None):
            raise ValueError("give exactly one of 'endpoint' (an endpoint's name) or 'model' (a folder or Hub repo id)")
        if self.endpoint is not None and (self.task is not None or self.runtime is not None):
            raise ValueError("'task' and 'runtime' go with 'model'; a job on an endpoint uses the endpoint's")
        return self


def content_type_for(name: str, requested: str | None) -> str:
    """The content type of an input file: the request's, else its suffix's, else JSON Lines."""
    if requested:
        return requested
    lowered = name.lower()
    for suffix, content_type in _BY_SUFFIX.items():
        if lowered.endswith(suffix):
            return content_type
    return "application/jsonlines"
