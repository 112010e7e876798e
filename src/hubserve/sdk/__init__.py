"""The Python SDK: ``Client`` and ``AsyncClient`` over the hubserve HTTP API, and the SageMaker
Python SDK's shape (``HuggingFaceModel(...).deploy(...)`` -> ``Predictor``) on top of them.

Imports only httpx and ``hubserve.errors``; nothing from the server side.
"""

from hubserve.sdk.aio import AsyncClient
from hubserve.sdk.client import (
    Client,
    ClientError,
    Invocation,
    ServerUnreachable,
    StreamEvent,
    error_from_response,
)
from hubserve.sdk.sagemaker import (
    AsyncInferenceConfig,
    AsyncInferenceModelError,
    AsyncInferenceResponse,
    HuggingFaceModel,
    ObjectNotExistedError,
    PollingTimeoutError,
    Predictor,
    ServerlessInferenceConfig,
    Session,
    WaiterConfig,
)

__all__ = [
    "AsyncClient",
    "AsyncInferenceConfig",
    "AsyncInferenceModelError",
    "AsyncInferenceResponse",
    "Client",
    "ClientError",
    "HuggingFaceModel",
    "Invocation",
    "ObjectNotExistedError",
    "PollingTimeoutError",
    "Predictor",
    "ServerUnreachable",
    "ServerlessInferenceConfig",
    "Session",
    "StreamEvent",
    "WaiterConfig",
    "error_from_response",
]
