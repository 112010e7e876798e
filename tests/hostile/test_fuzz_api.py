"""The whole HTTP API fuzzed from its OpenAPI document (schemathesis) against a real server, with the token.

Bounded for the test suite (a few examples per operation, well under a minute); ``scripts/fuzz`` runs the
long version. Checked on every response: no 5xx; a documented success conforms to its schema; an error
has one of the API's error shapes (hubserve's ``{"error": {"type", "message"}}``, Inference Endpoints'
``{"error": "..."}`` on /v2, SageMaker's ``{"__type", "message"}`` or ``{"ErrorCode", "Message"}``).
"""

from __future__ import annotations

import os
from typing import Any

import httpx
import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis.checks import not_a_server_error, response_schema_conformance
from schemathesis.core.failures import Failure

from hubserve.compose import create_app
from hubserve.settings import Settings
from tests.integration.conftest import RunningServer

EXAMPLES = int(os.environ.get("HUBSERVE_FUZZ_EXAMPLES", "4"))


def _document() -> dict[str, Any]:
    """The OpenAPI document the server serves at /openapi.json (static: the app's routes, no server needed).
    Loaded at collection, since schemathesis' lazy fixture loading does not run under pytest 9."""
    document: dict[str, Any] = create_app(Settings()).openapi()
    return document


schema = schemathesis.openapi.from_dict(_document())
schema.config.phases.coverage.enabled = os.environ.get("HUBSERVE_FUZZ_COVERAGE") == "1"  # scripts/fuzz turns it on


def error_shaped(body: Any) -> bool:
    """One of the API's error shapes (see the module)."""
    if not isinstance(body, dict):
        return False
    error = body.get("error")
    if isinstance(error, dict):
        return isinstance(error.get("type"), str) and isinstance(error.get("message"), str)
    if isinstance(error, str):
        return True
    if isinstance(body.get("__type"), str) and isinstance(body.get("message"), str):
        return True
    if isinstance(body.get("ErrorCode"), str) and isinstance(body.get("Message"), str):
        return True
    return isinstance(body.get("message"), str) and isinstance(body.get("type"), str)  # OpenAI's, inside "error"


@schemathesis.check
def error_shape(ctx: Any, response: Any, case: Any) -> bool | None:
    """A 4xx answers one of the error shapes, never FastAPI's default ``{"detail": ...}``."""
    if 400 <= response.status_code < 500 and response.status_code not in (405,):
        try:
            body = response.json()
        except ValueError:
            raise Failure(operation=case.operation.label, title="Error body is not JSON",
                          message=response.text[:300], code="error_shape") from None  # fmt: skip
        if not error_shaped(body):
            raise Failure(operation=case.operation.label, title="Error body has none of the API's error shapes",
                          message=str(body)[:300], code="error_shape")  # fmt: skip
    return None


@schema.parametrize()
@settings(
    max_examples=EXAMPLES, deadline=None, suppress_health_check=list(HealthCheck), derandomize=True, database=None
)
def test_fuzzed_requests_get_no_5xx_and_documented_shapes(case: Any, hostile_server: RunningServer) -> None:
    response = case.call(base_url=hostile_server.url, headers=hostile_server.headers(), timeout=20)
    checks = [not_a_server_error, error_shape]
    if response.status_code < 400:
        checks.append(response_schema_conformance)
    case.validate_response(response, checks=checks)
    assert httpx.get(f"{hostile_server.url}/health", timeout=5).status_code == 200
