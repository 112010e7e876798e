"""hubserve.sdk.Client against a tiny real HTTP server that answers canned responses.

No mocks of httpx: every test goes over a socket on 127.0.0.1, so the client's
error mapping, headers and connection handling are the real thing.
"""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

import hubserve
from hubserve import errors
from hubserve.sdk import Client, ClientError, Invocation, ServerUnreachable
from hubserve.spec import EndpointSpec

# --- a canned HTTP server ------------------------------------------------------------


@dataclass
class Recorded:
    method: str
    path: str
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)


Reply = tuple  # (status, body: dict | list | bytes | str, headers: dict, delay_s: float) - last two optional


class _Handler(BaseHTTPRequestHandler):
    server: CannedServer

    def _serve(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        self.server.requests.append(Recorded(self.command, self.path, dict(self.headers), body))
        replies = self.server.routes.get((self.command, self.path))
        if replies is None:
            reply: Reply = (404, {"error": {"type": "NotRouted", "message": f"no canned {self.command} {self.path}"}})
        else:
            reply = replies.pop(0) if len(replies) > 1 else replies[0]
        status, payload, headers, delay = (*reply, None, None)[:4]
        headers = dict(headers or {})
        if delay:
            time.sleep(delay)
        if isinstance(payload, (dict, list)):
            data, ctype = json.dumps(payload).encode(), "application/json"
        else:
            data = payload if isinstance(payload, bytes) else str(payload).encode()
            ctype = "text/plain"
        self.send_response(status)
        self.send_header("Content-Type", headers.pop("Content-Type", ctype))
        for key, value in headers.items():
            self.send_header(key, value)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = _serve

    def log_message(self, *args: Any) -> None:
        pass


class CannedServer(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.routes: dict[tuple[str, str], list[Reply]] = {}
        self.requests: list[Recorded] = []
        self.url = f"http://127.0.0.1:{self.server_address[1]}"

    def handle_error(self, request: Any, client_address: Any) -> None:
        if not isinstance(sys.exc_info()[1], (BrokenPipeError, ConnectionResetError)):  # a client that gave up
            super().handle_error(request, client_address)

    def route(self, method: str, path: str, *replies: Reply) -> None:
        """Answer ``method path`` with these replies in turn; the last one repeats."""
        self.routes[(method, path)] = [tuple(r) for r in replies]


@pytest.fixture
def canned() -> Iterator[CannedServer]:
    server = CannedServer()
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.01}, daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()


@pytest.fixture
def client(canned: CannedServer) -> Iterator[Client]:
    with Client(canned.url, token="") as c:
        yield c


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _description(name: str = "sst2", state: str = "running", **extra: Any) -> dict[str, Any]:
    return {
        "name": name,
        "model": {"source": "/models/sst2", "task": "text-classification"},
        "compute": {"type": "serverless", "memory_mb": 2048, "max_concurrency": 5},
        "env": {},
        "custom_code": False,
        "state": state,
        "reason": None,
        "url": f"http://127.0.0.1:8080/endpoints/{name}",
        "replicas": {"ready": 1, "desired": 1},
        "notes": [],
        **extra,
    }


def _error(type_name: str, message: str, details: list[dict[str, str]] | None = None) -> dict[str, Any]:
    body: dict[str, Any] = {"type": type_name, "message": message}
    if details:
        body["details"] = details
    return {"error": body}


# --- the public surface ----------------------------------------------------------


def test_public_api_is_pinned() -> None:
    assert hubserve.__all__ == sorted(hubserve.__all__)
    assert hubserve.__all__ == ["Client", "EndpointSpec", "HubserveError", "Invocation", "__version__"]
    assert hubserve.__version__ == "0.1.0"
    assert hubserve.Client is Client and hubserve.HubserveError is errors.HubserveError
    assert hubserve.EndpointSpec is EndpointSpec


def test_import_hubserve_stays_light() -> None:
    code = "import sys, hubserve; print(sorted(m for m in ('httpx', 'pydantic', 'torch') if m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


# --- error mapping -----------------------------------------------------------------


@pytest.mark.parametrize(
    ("status", "type_name", "cls"),
    [
        (400, "ValidationError", errors.ValidationError),
        (401, "UnauthorizedError", errors.Unauthorized),
        (404, "EndpointNotFound", errors.EndpointNotFound),
        (409, "EndpointExists", errors.EndpointExists),
        (413, "PayloadTooLarge", errors.PayloadTooLarge),
        (424, "ModelError", errors.ModelError),
        (429, "ThrottlingException", errors.Throttled),
        (500, "InternalFailure", errors.HubserveError),
        (502, "ReplicaCrashed", errors.ReplicaCrashed),
        (503, "ModelNotReadyException", errors.ModelNotReady),
    ],
)
def test_error_type_maps_to_class(
    canned: CannedServer, client: Client, status: int, type_name: str, cls: type[errors.HubserveError]
) -> None:
    canned.route("GET", "/v1/endpoints/x", (status, _error(type_name, f"server says {status}"), {"x-amzn-ErrorType": type_name}))
    with pytest.raises(errors.HubserveError) as info:
        client.get_endpoint("x")
    assert type(info.value) is cls
    assert (info.value.status, info.value.type, info.value.message) == (status, type_name, f"server says {status}")
    assert str(info.value) == f"server says {status}"


def test_422_is_a_spec_error_with_field_details(canned: CannedServer, client: Client) -> None:
    details = [{"field": "compute.memory_mb", "message": "memory_mb must be one of 1024, 2048"}]
    canned.route("POST", "/v1/endpoints", (422, _error("ValidationError", "Invalid endpoint spec", details)))
    with pytest.raises(errors.SpecError) as info:
        client.create_endpoint({"name": "x", "model": {"source": "/m"}, "compute": {"memory_mb": 1000}})
    assert isinstance(info.value, errors.ValidationError)
    assert info.value.status == 422 and info.value.details == details


def test_unknown_type_keeps_status_and_type(canned: CannedServer, client: Client) -> None:
    canned.route("GET", "/health", (418, _error("Teapot", "short and stout")))
    with pytest.raises(errors.HubserveError) as info:
        client.health()
    assert type(info.value) is errors.HubserveError
    assert (info.value.status, info.value.type, info.value.message) == (418, "Teapot", "short and stout")


def test_non_json_error_maps_by_status_or_header(canned: CannedServer, client: Client) -> None:
    canned.route("GET", "/v1/endpoints/gone", (404, "<html>not here</html>"))
    canned.route("POST", "/endpoints/m", (424, "boom", {"x-amzn-ErrorType": "ModelError"}))
    with pytest.raises(errors.EndpointNotFound) as info:
        client.get_endpoint("gone")
    assert info.value.message == "<html>not here</html>"
    with pytest.raises(errors.ModelError, match="boom"):
        client.invoke("m", "hi")


def test_sagemaker_error_shape(canned: CannedServer, client: Client) -> None:
    body = {"ErrorCode": "ModelError", "Message": "boom", "OriginalStatusCode": 400}
    canned.route("POST", "/endpoints/m/invocations", (424, body, {"x-amzn-ErrorType": "ModelError", "Retry-After": "1"}))
    with pytest.raises(errors.ModelError) as info:
        client.invoke("m", b"{}", dialect="sagemaker")
    assert info.value.message == "boom" and info.value.headers["retry-after"] == "1"


def test_framework_default_422_becomes_field_details(canned: CannedServer, client: Client) -> None:
    detail = [{"loc": ["body", "compute", "memory_mb"], "msg": "bad size", "type": "value_error"}]
    canned.route("PATCH", "/v1/endpoints/x", (422, {"detail": detail}))
    with pytest.raises(errors.SpecError) as info:
        client.patch_endpoint("x", {"compute": {"memory_mb": 3}})
    assert info.value.details == [{"field": "compute.memory_mb", "message": "bad size"}]


def test_connection_refused_says_how_to_start_the_server() -> None:
    url = f"http://127.0.0.1:{_free_port()}"
    with Client(url) as c, pytest.raises(ServerUnreachable) as info:
        c.list_endpoints()
    assert isinstance(info.value, errors.HubserveError)
    assert url in info.value.message and "hubserve serve" in info.value.message


def test_read_timeout_is_a_client_error(canned: CannedServer) -> None:
    canned.route("GET", "/health", (200, {"status": "ok"}, {}, 1.0))
    with Client(canned.url, timeout=0.2) as c, pytest.raises(ClientError, match=r"no answer within 0.2s") as info:
        c.health()
    assert not isinstance(info.value, ServerUnreachable)


# --- management ------------------------------------------------------------------


def test_token_and_url_come_from_env(canned: CannedServer, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HUBSERVE_URL", canned.url + "/")
    monkeypatch.setenv("HUBSERVE_TOKEN", "s3cret")
    canned.route("GET", "/health", (200, {"status": "ok"}))
    with Client() as c:
        assert c.url == canned.url
        assert c.health() == {"status": "ok"}
    assert canned.requests[-1].headers["Authorization"] == "Bearer s3cret"


def test_no_token_sends_no_authorization(canned: CannedServer, client: Client, monkeypatch: pytest.MonkeyPatch) -> None:
    canned.route("GET", "/v1/endpoints", (200, {"items": [_description()]}))
    assert [item["name"] for item in client.list_endpoints()] == ["sst2"]
    assert "Authorization" not in canned.requests[-1].headers


def test_management_methods_hit_the_documented_routes(canned: CannedServer, client: Client) -> None:
    spec = EndpointSpec.model_validate(
        {"name": "sst2", "model": {"source": "/models/sst2", "task": "sentiment-analysis"}}
    )
    canned.route("POST", "/v1/endpoints", (201, _description(state="pending")))
    canned.route("PUT", "/v1/endpoints/sst2", (200, _description(state="updating")))
    canned.route("PATCH", "/v1/endpoints/sst2", (200, _description(state="updating")))
    canned.route("DELETE", "/v1/endpoints/sst2", (202, _description(state="deleting")))
    canned.route("POST", "/v1/endpoints/sst2/pause", (200, _description(state="paused")))
    canned.route("POST", "/v1/endpoints/sst2/resume", (200, _description(state="pending")))

    assert client.create_endpoint(spec)["state"] == "pending"
    sent = canned.requests[-1].json()
    assert sent["model"] == {
        "source": "/models/sst2", "revision": None, "task": "text-classification", "framework": "pytorch", "dtype": "auto",
        "runtime": "torch", "allow_missing_weights": False, "trusted_types": [], "multi_model": False,
        "models_memory_mb": None,
    }  # fmt: skip
    assert sent["compute"]["type"] == "serverless"
    assert client.update_endpoint("sst2", {"name": "sst2", "model": {"source": "/m"}})["state"] == "updating"
    assert canned.requests[-1].json() == {"name": "sst2", "model": {"source": "/m"}}
    client.patch_endpoint("sst2", {"compute": {"max_concurrency": 7}})
    assert (canned.requests[-1].method, canned.requests[-1].json()) == ("PATCH", {"compute": {"max_concurrency": 7}})
    assert client.delete_endpoint("sst2")["state"] == "deleting"
    assert client.pause_endpoint("sst2")["state"] == "paused"
    assert client.resume_endpoint("sst2")["state"] == "pending"
    assert [r.method for r in canned.requests] == ["POST", "PUT", "PATCH", "DELETE", "POST", "POST"]


def test_names_are_quoted_into_paths(canned: CannedServer, client: Client) -> None:
    with pytest.raises(errors.HubserveError):
        client.get_endpoint("a/b c")
    assert canned.requests[-1].path == "/v1/endpoints/a%2Fb%20c"


# --- wait_for --------------------------------------------------------------------


def test_wait_for_polls_until_running(canned: CannedServer, client: Client) -> None:
    canned.route(
        "GET", "/v1/endpoints/sst2",
        (200, _description(state="pending")), (200, _description(state="initializing")), (200, _description()),
    )  # fmt: skip
    seen: list[str] = []
    result = client.wait_for("sst2", interval=0.01, on_poll=lambda d: seen.append(d["state"]))
    assert result["state"] == "running"
    assert seen == ["pending", "initializing", "running"]


def test_wait_for_raises_with_the_failure_reason(canned: CannedServer, client: Client) -> None:
    canned.route("GET", "/v1/endpoints/sst2", (200, _description(state="failed", reason="config.json not found")))
    with pytest.raises(errors.ModelNotReady, match=r"failed: config.json not found"):
        client.wait_for("sst2", interval=0.01)
    assert client.wait_for("sst2", states="failed")["state"] == "failed"


def test_wait_for_times_out(canned: CannedServer, client: Client) -> None:
    canned.route("GET", "/v1/endpoints/sst2", (200, _description(state="initializing", reason="loading weights")))
    with pytest.raises(errors.ModelNotReady, match=r"still initializing after 0.1s.*loading weights"):
        client.wait_for("sst2", timeout=0.1, interval=0.02)


# --- invocation ------------------------------------------------------------------

_TIMING = {"x-model-latency-ms": "12.5", "x-overhead-latency-ms": "0.75", "x-cold-start": "true"}


def test_invoke_hf_wraps_inputs_and_reads_timing(canned: CannedServer, client: Client) -> None:
    answer = [{"label": "POSITIVE", "score": 0.99}]
    canned.route("POST", "/endpoints/sst2", (200, answer, dict(_TIMING)))
    result = client.invoke("sst2", "I love it", parameters={"top_k": 1})
    assert isinstance(result, Invocation)
    assert result.body == answer and result.status == 200
    assert (result.model_latency_ms, result.overhead_latency_ms, result.cold_start) == (12.5, 0.75, True)
    assert result.headers["x-cold-start"] == "true"
    request = canned.requests[-1]
    assert request.json() == {"inputs": "I love it", "parameters": {"top_k": 1}}
    assert request.headers["Content-Type"] == "application/json"

    client.invoke("sst2", {"inputs": ["a", "b"], "parameters": {"top_k": 2}})
    assert canned.requests[-1].json() == {"inputs": ["a", "b"], "parameters": {"top_k": 2}}


def test_invoke_sagemaker_sends_bytes_and_headers(canned: CannedServer, client: Client) -> None:
    canned.route("POST", "/endpoints/sst2/invocations", (200, b"POSITIVE,0.99", {"Content-Type": "text/csv", "x-cold-start": "false"}))
    result = client.invoke("sst2", b"I love it", dialect="sagemaker", content_type="text/plain", accept="text/csv")
    assert result.body == b"POSITIVE,0.99"
    assert result.cold_start is False and result.model_latency_ms == 0.0
    request = canned.requests[-1]
    assert request.body == b"I love it"
    assert request.headers["Content-Type"] == "text/plain" and request.headers["Accept"] == "text/csv"

    client.invoke("sst2", {"inputs": "x"}, dialect="sagemaker")
    assert canned.requests[-1].json() == {"inputs": "x"}
    assert canned.requests[-1].headers["Content-Type"] == "application/json"


def test_invoke_rejects_unknown_dialect(client: Client) -> None:
    with pytest.raises(ValueError, match="dialect"):
        client.invoke("sst2", "x", dialect="grpc")  # type: ignore[arg-type]
