"""The whole error taxonomy of hubserve and the HTTP answer each one maps to.

    HubserveError                     500 InternalFailure
    ├── ValidationError               400 (bad invocation body, bad parameters)
    │   └── SpecError                 422 (bad endpoint spec; carries per-field details)
    ├── Unauthorized                  401
    ├── Forbidden                     403 (a valid token without the scope or the endpoint)
    ├── NotFound                      404 (a token or other named thing that does not exist)
    ├── EndpointNotFound              404
    ├── InferenceNotFound             404 (no async inference of that id)
    ├── TargetModelNotFound           404 (a multi-model endpoint has no model of that name)
    ├── EndpointExists                409
    ├── BatchJobNotFound              404
    ├── BatchJobConflict              409 (stop a finished job, start a running one)
    ├── PayloadTooLarge               413
    ├── Throttled                     429 ThrottlingException
    ├── ModelError                    424 (the model or handler raised)
    ├── ModelNotReady                 503 (paused, failed, still starting)
    │   └── ColdStartTimeout          503
    ├── ReplicaCrashed                502 (the replica died while serving this request)
    ├── InvocationTimeout             504 (no answer before the invocation's deadline; cancelled in the replica)
    ├── StoreUnavailable              503 (the state store is locked or unreachable; Retry-After)
    ├── ClientClosed                  499 (the client left mid-stream; recorded, never sent)
    └── Async and batch outcomes, recorded on the inference or the record rather than sent as HTTP:
        ├── InputUnreadable           400 (the payload location cannot be read)
        ├── OutputUnwritable          500 (the result cannot be written to its location)
        ├── RequestExpired            410 (still queued at the end of its time to live)
        └── ServerRestarted           500 (the server stopped during the attempt)

Every error renders as ``{"error": {"type", "message", ...}}`` plus the SageMaker-style
``x-amzn-ErrorType`` header, so both dialects read the same information.
"""

from __future__ import annotations

from typing import Any


class HubserveError(Exception):
    """Base of every error a client can see; subclasses fix the status and type name."""

    status: int = 500
    type: str = "InternalFailure"

    def __init__(self, message: str, *, details: list[dict[str, Any]] | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.details = details
        # Extra response headers (Retry-After, latency headers of a request that reached the model).
        self.headers: dict[str, str] = {}

    def to_dict(self) -> dict[str, Any]:
        body: dict[str, Any] = {"type": self.type, "message": self.message}
        if self.details:
            body["details"] = self.details
        return {"error": body}


class ValidationError(HubserveError):
    status = 400
    type = "ValidationError"


class SpecError(ValidationError):
    """An endpoint spec that cannot be accepted; ``details`` names each bad field."""

    status = 422


class GenerationLimitExceeded(ValidationError):
    """A generation asks for more than the endpoint allows (``max_new_tokens`` over its cap): 422, as TGI answers."""

    status = 422
    type = "GenerationLimitExceeded"


class Unauthorized(HubserveError):
    status = 401
    type = "UnauthorizedError"


class Forbidden(HubserveError):
    """A valid token whose scopes or endpoint list do not allow this request."""

    status = 403
    type = "ForbiddenError"


class NotFound(HubserveError):
    """A named thing (a token, ...) that does not exist."""

    status = 404
    type = "NotFound"


class EndpointNotFound(HubserveError):
    status = 404
    type = "EndpointNotFound"

    def __init__(self, name: str) -> None:
        super().__init__(f"Endpoint '{name}' does not exist. List endpoints with GET /v1/endpoints.")


class InferenceNotFound(HubserveError):
    status = 404
    type = "InferenceNotFound"

    def __init__(self, endpoint: str, inference_id: str) -> None:
        super().__init__(
            f"Endpoint '{endpoint}' has no async inference '{inference_id}'. "
            f"List them with GET /endpoints/{endpoint}/async-invocations."
        )


class TargetModelNotFound(HubserveError):
    """A multi-model endpoint was asked for a model its source does not hold."""

    status = 404
    type = "TargetModelNotFound"


class EndpointExists(HubserveError):
    status = 409
    type = "EndpointExists"

    def __init__(self, name: str) -> None:
        super().__init__(
            f"Endpoint '{name}' already exists. Update it with PUT /v1/endpoints/{name} "
            "or choose another name."
        )


class BatchJobNotFound(HubserveError):
    status = 404
    type = "BatchJobNotFound"

    def __init__(self, job_id: str) -> None:
        super().__init__(f"Batch job '{job_id}' does not exist. List batch jobs with GET /v1/batch-jobs.")


class BatchJobConflict(HubserveError):
    """The job is not in a status where the operation applies (409)."""

    status = 409
    type = "BatchJobConflict"


class PayloadTooLarge(HubserveError):
    status = 413
    type = "PayloadTooLarge"


class Throttled(HubserveError):
    status = 429
    type = "ThrottlingException"


class ModelError(HubserveError):
    status = 424
    type = "ModelError"


class ModelNotReady(HubserveError):
    status = 503
    type = "ModelNotReadyException"


class ColdStartTimeout(ModelNotReady):
    pass


class ReplicaCrashed(HubserveError):
    status = 502
    type = "ReplicaCrashed"


class InvocationTimeout(HubserveError):
    status = 504
    type = "InvocationTimeout"


class StoreUnavailable(HubserveError):
    """The state store cannot be read or written now (SQLite locked or unopenable, PostgreSQL unreachable).

    Raised by the store's engine in place of the driver's error (store/engine.py), so every route
    answers it in its own dialect; sync invocations of running endpoints never read the store.
    """

    status = 503
    type = "StoreUnavailable"
    RETRY_AFTER_S = 2

    def __init__(self, reason: str) -> None:
        super().__init__(
            f"The state store is unavailable ({reason}). This is usually brief (another process holds the database, "
            f"or it is restarting): retry in {self.RETRY_AFTER_S} s. Invocations of running endpoints still work."
        )
        self.headers["Retry-After"] = str(self.RETRY_AFTER_S)


class InputUnreadable(HubserveError):
    status = 400
    type = "InputError"


class OutputUnwritable(HubserveError):
    status = 500
    type = "OutputWriteError"


class RequestExpired(HubserveError):
    status = 410
    type = "RequestExpired"


class ServerRestarted(HubserveError):
    status = 500
    type = "ServerRestarted"


class ClientClosed(HubserveError):
    """The client went away before the answer was complete (nginx's 499); its work was cancelled."""

    status = 499
    type = "ClientClosedRequest"


ERROR_TYPES: dict[str, type[HubserveError]] = {
    cls.type: cls
    for cls in (ValidationError, GenerationLimitExceeded, ModelError, ModelNotReady, ReplicaCrashed, Throttled, PayloadTooLarge,
                InvocationTimeout, TargetModelNotFound)
}


def from_type(type_name: str, message: str) -> HubserveError:
    """Rebuild an error that crossed a process boundary as ``(type, message)``."""
    return ERROR_TYPES.get(type_name, HubserveError)(message)
