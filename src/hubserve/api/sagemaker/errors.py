"""The awsJson1_1 error shape and the error codes boto3's ``sagemaker`` client expects.

botocore's JSON parser reads the code from the body's ``__type`` (anything before ``#`` is a
namespace) and the message from ``message``; the code is what ``ClientError.response["Error"]["Code"]``
and the waiters match on. SageMaker answers a missing endpoint, model or config, and a name
already taken, with ``ValidationException`` (400), so the ``endpoint_deleted`` waiter succeeds on it.
"""

from __future__ import annotations

import uuid

from fastapi.responses import JSONResponse

AMZ_JSON = "application/x-amz-json-1.1"


class SageMakerApiError(Exception):
    """An error answered in the awsJson shape: ``{"__type": code, "message": ...}``."""

    def __init__(self, code: str, message: str, status: int = 400) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.status = status


def validation(message: str) -> SageMakerApiError:
    return SageMakerApiError("ValidationException", message)


def not_found(kind: str, name: str) -> SageMakerApiError:
    """SageMaker's wording for a missing resource, with its code (ValidationException)."""
    return validation(f'Could not find {kind} "{name}".')


def error_json(error: SageMakerApiError) -> JSONResponse:
    return JSONResponse(
        {"__type": error.code, "message": error.message},
        status_code=error.status,
        media_type=AMZ_JSON,
        headers={"x-amzn-RequestId": str(uuid.uuid4()), "x-amzn-ErrorType": error.code},
    )
