"""The SageMaker InvokeEndpoint dialect on the invocation route: response headers and modelled errors.

Success: ``CustomAttributes`` is echoed back (``X-Amzn-SageMaker-Custom-Attributes``), as a container
that forwards it does, with the ``InferenceId`` and ``x-Amzn-Invoked-Production-Variant`` boto3 reads.

botocore takes the code from the ``x-amzn-ErrorType`` header (else the body's ``code``), and
``client.exceptions.<Code>`` is the shape of that name in ``sagemaker-runtime``'s model; a
ModelError's ``OriginalStatusCode``, ``OriginalMessage`` and ``LogStreamArn`` are read from the body.
Statuses are the ones the model gives each shape:

    ValidationError (bad body, payload too large)                        400 (413 kept for size)
    EndpointNotFound (unknown endpoint; SageMaker says ValidationError)   404, kept as hubserve's own
    TargetModelNotFound (a multi-model endpoint lacks the TargetModel)    404 ValidationError
    ModelError (the model or handler raised; a replica that crashed)      424
    ModelNotReadyException (paused, failed, being deleted)                429
    ServiceUnavailable (no replica ready within cold_start_timeout_s)     503
    ThrottlingException (past max_concurrency; what SageMaker Serverless  429
        sends, not modelled, so boto3 raises ClientError and retries it)
    InternalFailure (anything else)                                        500
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from fastapi.responses import JSONResponse

from hubserve.errors import (
    ColdStartTimeout,
    EndpointNotFound,
    HubserveError,
    InvocationTimeout,
    ModelError,
    ModelNotReady,
    PayloadTooLarge,
    ReplicaCrashed,
    StoreUnavailable,
    TargetModelNotFound,
    Throttled,
    ValidationError,
)

LOG_GROUP = "arn:aws:logs:{region}:000000000000:log-group:/aws/sagemaker/Endpoints/{name}"


_ECHOED = ("X-Amzn-SageMaker-Custom-Attributes", "X-Amzn-SageMaker-Inference-Id")


def response_headers(headers: dict[str, str], request_headers: Mapping[str, str]) -> dict[str, str]:
    """``headers`` plus those of a successful InvokeEndpoint answer: the variant, and what the client sent to echo."""
    headers["x-Amzn-Invoked-Production-Variant"] = "AllTraffic"
    for name in _ECHOED:
        value = request_headers.get(name)
        if value is not None:
            headers[name] = value
    return headers


def code_and_status(error: HubserveError) -> tuple[str, int]:
    """The modelled error code and HTTP status boto3 expects for ``error``."""
    if isinstance(error, PayloadTooLarge):
        return "ValidationError", 413
    if isinstance(error, EndpointNotFound):
        return error.type, error.status
    if isinstance(error, TargetModelNotFound):  # the model is not under the endpoint's prefix: SageMaker's shape
        return "ValidationError", 404
    if isinstance(error, ValidationError):
        return "ValidationError", 400
    if isinstance(error, (ModelError, ReplicaCrashed, InvocationTimeout)):  # SageMaker: a timeout is a ModelError
        return "ModelError", 424
    if isinstance(error, (ColdStartTimeout, StoreUnavailable)):
        return "ServiceUnavailable", 503
    if isinstance(error, ModelNotReady):
        return "ModelNotReadyException", 429
    if isinstance(error, Throttled):
        return "ThrottlingException", 429
    return "InternalFailure", 500


def status_of(error: Exception) -> int:
    """The HTTP status SageMaker's client gets for ``error`` (what timing records for this dialect)."""
    return code_and_status(error)[1] if isinstance(error, HubserveError) else 500


def sagemaker_error(error: HubserveError, endpoint: str, region: str = "us-east-1") -> JSONResponse:
    """The response SageMaker's InvokeEndpoint sends for ``error`` on ``endpoint``."""
    code, status = code_and_status(error)
    body: dict[str, Any] = {"ErrorCode": code, "Message": error.message, "message": error.message}
    if code == "ModelError":
        original = 502 if isinstance(error, ReplicaCrashed) else 504 if isinstance(error, InvocationTimeout) else 400
        body["OriginalStatusCode"] = original  # the HF toolkit answers 400 for a raise
        body["OriginalMessage"] = error.message
        body["LogStreamArn"] = LOG_GROUP.format(region=region, name=endpoint)
        body["Message"] = body["message"] = (
            f"Received {'client' if original < 500 else 'server'} error ({original}) from primary with message \"{error.message}\". "
            f"See the endpoint's logs (hubserve logs {endpoint})."
        )
    headers = {**error.headers, "x-amzn-ErrorType": code, "x-amzn-hubserve-error": error.type}
    return JSONResponse(body, status_code=status, headers=headers)
