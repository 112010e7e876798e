"""The HTTP layer both clients share: where each call goes, how its body is built, how answers and
errors are read back.

Every API call is first a ``Call`` (method, path, params, body, headers, and how to read the
answer), built by the functions below without any I/O. ``Client`` (httpx.Client) and
``AsyncClient`` (httpx.AsyncClient) only send it, so routes, bodies, error mapping and response
parsing live once, and a fix here reaches the CLI (which uses ``Client``) and async code alike.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal
from urllib.parse import quote

import httpx

from hubserve import __version__, errors

if TYPE_CHECKING:
    from hubserve.spec import EndpointSpec

DEFAULT_URL = "http://127.0.0.1:8080"
EVENT_STREAM = "text/event-stream"
DEFAULT_TIMEOUT = 120.0  # seconds; long enough to ride out a cold start on the invocation route

Dialect = Literal["hf", "sagemaker"]
Reader = Literal["json", "text", "invocation"]

ASYNC_DONE = ("succeeded", "failed", "expired")
BATCH_DONE = ("completed", "failed", "stopped")


class ClientError(errors.HubserveError):
    """Raised by the client itself because no HTTP answer came back (timeout, broken connection)."""

    type = "ClientError"


class ServerUnreachable(ClientError):
    """Nothing answered at the client's URL: the server is not running or the URL is wrong."""

    status = 503
    type = "ServerUnreachable"


@dataclass(frozen=True)
class Invocation:
    """One invocation's answer: the parsed body plus the timing headers every response carries."""

    body: Any  # parsed JSON, or bytes when the answer is not JSON
    status: int
    model_latency_ms: float
    overhead_latency_ms: float
    cold_start: bool
    headers: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class StreamEvent:
    """One server-sent event of a stream: ``data`` parsed as JSON when it is JSON, else the text.

    A text-generation endpoint sends text-generation-inference's events: ``data["token"]["text"]``
    for each token, and ``data["generated_text"]`` on the last one.
    """

    data: Any
    event: str = "message"
    id: str | None = None

    @property
    def text(self) -> str:
        """The token's text of a TGI event (``""`` for an event without one), else the data as text."""
        if isinstance(self.data, dict):
            token = self.data.get("token")
            return str(token.get("text", "")) if isinstance(token, dict) else ""
        return self.data if isinstance(self.data, str) else json.dumps(self.data)


@dataclass(frozen=True)
class Call:
    """One HTTP request of the API, ready to send, and how to read its answer."""

    method: str
    path: str
    params: dict[str, Any] | None = None
    json: Any = None
    content: Any = None
    headers: dict[str, str] | None = None
    reader: Reader = "json"

    def kwargs(self) -> dict[str, Any]:
        """The keyword arguments of ``httpx.Client.request`` (and the async one)."""
        found = {"params": self.params, "json": self.json, "content": self.content, "headers": self.headers}
        return {key: value for key, value in found.items() if value is not None}


# --- where to connect ------------------------------------------------------------------


def resolve_url(url: str | None) -> str:
    return (url or os.environ.get("HUBSERVE_URL") or DEFAULT_URL).rstrip("/")


def resolve_token(token: str | None) -> str | None:
    return token if token is not None else (os.environ.get("HUBSERVE_TOKEN") or None)


def default_headers(token: str | None) -> dict[str, str]:
    headers = {"User-Agent": f"hubserve-python/{__version__}"}
    if token:
        headers["Authorization"] = f"Bearer {token}"
    return headers


# --- the calls ---------------------------------------------------------------------------


def endpoint_path(name: str, prefix: str = "/v1/endpoints") -> str:
    return f"{prefix}/{quote(name, safe='')}"


def spec_json(spec: Mapping[str, Any] | EndpointSpec) -> dict[str, Any]:
    if hasattr(spec, "model_dump"):  # an EndpointSpec; checked by duck type to keep pydantic unimported
        return spec.model_dump(mode="json")
    return dict(spec)


def health() -> Call:
    return Call("GET", "/health")


def create_endpoint(spec: Mapping[str, Any] | EndpointSpec) -> Call:
    return Call("POST", "/v1/endpoints", json=spec_json(spec))


def list_endpoints() -> Call:
    return Call("GET", "/v1/endpoints")


def get_endpoint(name: str) -> Call:
    return Call("GET", endpoint_path(name))


def get_metrics(name: str, window: str) -> Call:
    return Call("GET", endpoint_path(name) + "/metrics", params={"window": window})


def get_logs(name: str, since: str | None, tail: int, source: str | None) -> Call:
    params: dict[str, Any] = {"tail": tail}
    if since:
        params["since"] = since
    if source:
        params["source"] = source
    return Call("GET", endpoint_path(name) + "/logs", params=params)


def prometheus_metrics() -> Call:
    return Call("GET", "/metrics", reader="text")


def update_endpoint(name: str, spec: Mapping[str, Any] | EndpointSpec) -> Call:
    return Call("PUT", endpoint_path(name), json=spec_json(spec))


def patch_endpoint(name: str, patch: Mapping[str, Any]) -> Call:
    return Call("PATCH", endpoint_path(name), json=dict(patch))


def delete_endpoint(name: str) -> Call:
    return Call("DELETE", endpoint_path(name))


def endpoint_action(name: str, action: Literal["pause", "resume", "scale-to-zero"]) -> Call:
    return Call("POST", endpoint_path(name) + f"/{action}")


def invoke(
    name: str,
    data: Any,
    *,
    dialect: Dialect = "hf",
    parameters: Mapping[str, Any] | None = None,
    content_type: str | None = None,
    accept: str | None = None,
) -> Call:
    """See ``Client.invoke``: the HF toolkit shape, or SageMaker's runtime shape at /invocations."""
    if dialect == "hf":
        path = endpoint_path(name, prefix="/endpoints")
        content, default_type = hf_body(data, parameters), "application/json"
    elif dialect == "sagemaker":
        path = endpoint_path(name, prefix="/endpoints") + "/invocations"
        if isinstance(data, (bytes, bytearray)):
            content = bytes(data)
        elif isinstance(data, str):
            content = data.encode()
        else:
            content = json.dumps(data).encode()
        default_type = "application/json"
    else:
        raise ValueError(f"unknown dialect {dialect!r}; use 'hf' or 'sagemaker'")
    headers = {"Content-Type": content_type or default_type}
    if accept:
        headers["Accept"] = accept
    return Call("POST", path, content=content, headers=headers, reader="invocation")


def stream(name: str, data: Any, *, parameters: Mapping[str, Any] | None = None) -> Call:
    """See ``Client.stream``: the HF toolkit route with ``"stream": true``, answered as server-sent events."""
    if isinstance(data, (bytes, bytearray)):
        content = hf_body(data, parameters)  # sent as it is: the Accept header asks for the stream
    else:
        body = dict(data) if isinstance(data, Mapping) else {"inputs": data}
        body["stream"] = True
        content = hf_body(body, parameters)
    headers = {"Content-Type": "application/json", "Accept": EVENT_STREAM}
    return Call("POST", endpoint_path(name, prefix="/endpoints"), content=content, headers=headers)


def invoke_async(
    name: str,
    data: Any = None,
    *,
    input_location: str | None = None,
    output_location: str | None = None,
    content_type: str | None = None,
    accept: str | None = None,
    inference_id: str | None = None,
    ttl_s: int | None = None,
    timeout_s: int | None = None,
) -> Call:
    """See ``Client.invoke_async``: the payload as the body or named by ``input_location``."""
    if (data is None) == (input_location is None):
        raise ValueError("give the payload as data or its input_location, exactly one of them")
    headers = {"X-Amzn-SageMaker-Content-Type": content_type or "application/json"}
    optional = {
        "X-Amzn-SageMaker-InputLocation": input_location,
        "X-Hubserve-Output-Location": output_location,
        "X-Amzn-SageMaker-Accept": accept,
        "X-Amzn-SageMaker-Inference-Id": inference_id,
        "X-Amzn-SageMaker-RequestTTLSeconds": None if ttl_s is None else str(ttl_s),
        "X-Amzn-SageMaker-InvocationTimeoutSeconds": None if timeout_s is None else str(timeout_s),
    }
    headers.update({key: value for key, value in optional.items() if value is not None})
    content: Any = b""
    if isinstance(data, (bytes, bytearray)):
        content = bytes(data)
    elif isinstance(data, str):
        content = data.encode()
    elif data is not None and isinstance(data, Iterable) and not isinstance(data, (Mapping, list, tuple)):
        content = data  # an iterator of bytes: httpx streams it
    elif data is not None:
        content = json.dumps(data).encode()
    path = endpoint_path(name, prefix="/endpoints") + "/async-invocations"
    return Call("POST", path, content=content, headers=headers)


def get_async_inference(name: str, inference_id: str) -> Call:
    path = endpoint_path(name, prefix="/endpoints") + f"/async-invocations/{quote(inference_id, safe='')}"
    return Call("GET", path)


def list_async_inferences(name: str, status: str | None, limit: int) -> Call:
    params: dict[str, Any] = {"limit": limit, **({"status": status} if status else {})}
    return Call("GET", endpoint_path(name, prefix="/endpoints") + "/async-invocations", params=params)


def create_batch_job(request: Mapping[str, Any]) -> Call:
    return Call("POST", "/v1/batch-jobs", json={k: v for k, v in request.items() if v is not None})


def list_batch_jobs() -> Call:
    return Call("GET", "/v1/batch-jobs")


def batch_job(job_id: str, action: Literal["", "stop", "start"] = "") -> Call:
    path = f"/v1/batch-jobs/{quote(job_id, safe='')}" + (f"/{action}" if action else "")
    return Call("POST" if action else "GET", path)


def create_token(name: str, scopes: Iterable[str], endpoints: Iterable[str] | None) -> Call:
    body: dict[str, Any] = {"name": name, "scopes": list(scopes)}
    if endpoints is not None:
        body["endpoints"] = list(endpoints)
    return Call("POST", "/v1/tokens", json=body)


def list_tokens(include_revoked: bool) -> Call:
    return Call("GET", "/v1/tokens", params={"include_revoked": "true"} if include_revoked else None)


def token(token_id: str, revoke: bool = False) -> Call:
    return Call("DELETE" if revoke else "GET", f"/v1/tokens/{quote(token_id, safe='')}")


def _model_path(group: str, version: int | None = None) -> str:
    path = f"/v1/models/{quote(group, safe='')}/versions"
    return path if version is None else f"{path}/{int(version)}"


def register_model(group: str, source: str, *, revision: str | None = None, task: str | None = None,
                   metrics: Mapping[str, Any] | None = None, description: str | None = None) -> Call:  # fmt: skip
    body: dict[str, Any] = {"source": source, "revision": revision, "task": task, "description": description,
                            "metrics": dict(metrics) if metrics is not None else None}  # fmt: skip
    return Call("POST", _model_path(group), json={k: v for k, v in body.items() if v is not None})


def list_model_groups() -> Call:
    return Call("GET", "/v1/models")


def list_model_versions(group: str) -> Call:
    return Call("GET", _model_path(group))


def model_version(group: str, version: int, action: Literal["", "approve", "reject", "delete"] = "") -> Call:
    """Describe a version, or approve, reject or delete it."""
    path = _model_path(group, version)
    if action == "delete":
        return Call("DELETE", path)
    return Call("POST", f"{path}/{action}") if action else Call("GET", path)


def model_approval(group: str, version: int, approval_status: str) -> Call:
    """Set a version's approval status by name (PendingManualApproval, Approved, Rejected)."""
    return Call("PATCH", _model_path(group, version), json={"approval_status": approval_status})


def audit(limit: int, since: str | None, endpoint: str | None) -> Call:
    params: dict[str, Any] = {"limit": limit}
    if since is not None:
        params["since"] = since
    if endpoint is not None:
        params["endpoint"] = endpoint
    return Call("GET", "/v1/audit", params=params)


def hf_body(data: Any, parameters: Mapping[str, Any] | None) -> bytes:
    if isinstance(data, (bytes, bytearray)):
        if parameters:
            raise ValueError("parameters cannot be merged into a raw bytes body")
        return bytes(data)
    body = dict(data) if isinstance(data, Mapping) else {"inputs": data}
    if parameters:
        body["parameters"] = {**(body.get("parameters") or {}), **parameters}
    return json.dumps(body).encode()


# --- answers -----------------------------------------------------------------------------


def read(call: Call, response: httpx.Response) -> Any:
    """A 2xx answer as the call wants it: parsed JSON ({} when empty), text, or an Invocation."""
    if call.reader == "text":
        return response.text
    if call.reader == "invocation":
        return invocation(response)
    if not response.content:
        return {}
    return response.json()


def items(payload: Any) -> list[dict[str, Any]]:
    """A list route's answer: ``{"items": [...]}`` (or a bare list)."""
    return list(payload["items"] if isinstance(payload, dict) else payload)


def invocation(response: httpx.Response) -> Invocation:
    body: Any = response.content
    if "json" in response.headers.get("content-type", ""):
        try:
            body = response.json()
        except ValueError:
            pass
    return Invocation(
        body=body,
        status=response.status_code,
        model_latency_ms=_float(response.headers.get("x-model-latency-ms")),
        overhead_latency_ms=_float(response.headers.get("x-overhead-latency-ms")),
        cold_start=response.headers.get("x-cold-start", "").lower() == "true",
        headers=dict(response.headers),
    )


def transport_error(exc: httpx.TransportError, method: str, url: str, path: str, timeout: float) -> ClientError:
    """No HTTP answer came back: say why, and how to start the server when nothing listens."""
    if isinstance(exc, (httpx.ConnectError, httpx.ConnectTimeout)):
        return ServerUnreachable(
            f"hubserve isn't reachable at {url} ({_reason(exc)}). "
            "Start it with `hubserve serve`, or point --url / HUBSERVE_URL at a running server."
        )
    if isinstance(exc, httpx.TimeoutException):
        error = ClientError(f"{method} {url}{path} got no answer within {timeout:g}s")
        error.status = 504
        return error
    return ClientError(f"{method} {url}{path} failed: {_reason(exc)}")


# The server's error type name -> the class to raise. Classes whose ``type`` repeats
# (SpecError shares "ValidationError"; ColdStartTimeout shares ModelNotReady's) are
# told apart by status below, or not at all where the wire carries no difference.
_BY_TYPE: dict[str, type[errors.HubserveError]] = {
    cls.type: cls
    for cls in (
        errors.HubserveError,
        errors.ValidationError,
        errors.GenerationLimitExceeded,
        errors.Unauthorized,
        errors.Forbidden,
        errors.NotFound,
        errors.EndpointNotFound,
        errors.TargetModelNotFound,
        errors.InferenceNotFound,
        errors.BatchJobNotFound,
        errors.BatchJobConflict,
        errors.EndpointExists,
        errors.PayloadTooLarge,
        errors.Throttled,
        errors.ModelError,
        errors.ModelNotReady,
        errors.ReplicaCrashed,
        errors.InvocationTimeout,
    )
}
_BY_STATUS: dict[int, type[errors.HubserveError]] = {
    cls.status: cls
    for cls in (
        errors.ValidationError,
        errors.SpecError,
        errors.Unauthorized,
        errors.Forbidden,
        errors.EndpointNotFound,
        errors.EndpointExists,
        errors.PayloadTooLarge,
        errors.Throttled,
        errors.ModelError,
        errors.ModelNotReady,
        errors.ReplicaCrashed,
    )
}


def error_from_response(response: httpx.Response) -> errors.HubserveError:
    """Rebuild the server's error from a non-2xx response (hubserve's JSON shape or anything else)."""
    status = response.status_code
    type_name = (response.headers.get("x-amzn-ErrorType") or "").split(":")[0] or None
    message = ""
    details: list[dict[str, Any]] | None = None
    try:
        payload = response.json()
    except ValueError:
        payload = None
    if isinstance(payload, dict) and isinstance(payload.get("error"), dict):
        body = payload["error"]
        type_name = body.get("type") or type_name
        message = str(body.get("message") or "")
        details = body.get("details") or None
    elif isinstance(payload, dict) and "Message" in payload:  # the SageMaker runtime shape (/invocations)
        type_name = payload.get("ErrorCode") or type_name
        message = str(payload.get("Message") or "")
    elif isinstance(payload, dict) and "detail" in payload:  # a framework default (FastAPI/Starlette)
        detail = payload["detail"]
        if isinstance(detail, list):
            details = [_pydantic_detail(item) for item in detail if isinstance(item, dict)]
            message = "Invalid request"
        else:
            message = str(detail)
    if not message:
        message = response.text.strip()[:500] or f"HTTP {status} {response.reason_phrase}".strip()

    cls = _BY_TYPE.get(type_name or "")
    if cls is errors.ValidationError and status == errors.SpecError.status:
        cls = errors.SpecError
    if cls is None:
        cls = _BY_STATUS.get(status, errors.HubserveError)
    # Bypass subclass constructors (EndpointNotFound takes a name): keep the server's own words.
    error = cls.__new__(cls)
    errors.HubserveError.__init__(error, message, details=details)
    error.headers = dict(response.headers)  # Retry-After, latency headers of a request that reached the model
    if error.status != status:
        error.status = status
    if type_name and error.type != type_name:
        error.type = type_name
    return error


# --- server-sent events ------------------------------------------------------------------


class EventParser:
    """Server-sent events from lines, as the HTML standard reads them: ``data:`` lines of one event
    joined by newlines, ``event:`` and ``id:`` kept, comments (``: ping``) and ``retry:`` skipped, an
    event dispatched at its blank line. An ``error`` event (hubserve's, after the 200) or a TGI error
    body (``{"error": "...", "error_type": ...}``) raises the typed error instead."""

    def __init__(self) -> None:
        self._data: list[str] = []
        self._event = ""
        self._id: str | None = None

    def feed(self, line: str) -> StreamEvent | None:
        """One line without its end; returns the event a blank line completes."""
        if not line:
            return self._dispatch()
        if line.startswith(":"):
            return None
        name, _, value = line.partition(":")
        if value.startswith(" "):
            value = value[1:]
        if name == "data":
            self._data.append(value)
        elif name == "event":
            self._event = value
        elif name == "id" and "\0" not in value:
            self._id = value
        return None

    def finish(self) -> StreamEvent | None:
        """The stream ended: an event without its blank line is dropped, as browsers do."""
        self._data, self._event = [], ""
        return None

    def _dispatch(self) -> StreamEvent | None:
        data, event = self._data, self._event or "message"
        self._data, self._event = [], ""
        if not data:
            return None
        text = "\n".join(data)
        parsed: Any = text
        try:
            parsed = json.loads(text)
        except ValueError:
            pass
        if event == "error" or (isinstance(parsed, dict) and isinstance(parsed.get("error"), str)):
            raise stream_error(parsed)
        return StreamEvent(parsed, event, self._id)


# text-generation-inference's error_type names (what huggingface_hub maps to its own classes).
_TGI_TYPES: dict[str, type[errors.HubserveError]] = {
    "validation": errors.ValidationError,
    "overloaded": errors.Throttled,
    "generation": errors.ModelError,
    "incomplete_generation": errors.ModelError,
}


def stream_error(data: Any) -> errors.HubserveError:
    """The failure a stream reported after its 200, as the ``hubserve.errors`` class it names."""
    if isinstance(data, dict) and isinstance(data.get("error"), dict):  # hubserve's own body
        type_name, message = data["error"].get("type"), str(data["error"].get("message") or "")
    elif isinstance(data, dict) and isinstance(data.get("error"), str):  # text-generation-inference's
        type_name, message = data.get("error_type"), data["error"]
    else:
        type_name, message = None, str(data)
    cls = _BY_TYPE.get(str(type_name or "")) or _TGI_TYPES.get(str(type_name or ""), errors.ModelError)
    error = cls.__new__(cls)
    errors.HubserveError.__init__(error, message or "the stream failed")
    if type_name and error.type != type_name:
        error.type = str(type_name)
    return error


def stream_refused(response: httpx.Response, name: str) -> errors.HubserveError | None:
    """An error answer to a stream request, or a 200 that is not a stream (the endpoint answered whole)."""
    if response.status_code >= 400:
        return error_from_response(response)
    if not response.headers.get("content-type", "").startswith(EVENT_STREAM):
        return ClientError(
            f"Endpoint '{name}' answered with {response.headers.get('content-type') or 'no content type'}, "
            "not a stream of server-sent events; call invoke() for its one answer."
        )
    return None


# --- polling verdicts (the sleeping differs: time.sleep or asyncio.sleep) -----------------


def endpoint_wait_verdict(
    name: str, description: dict[str, Any], wanted: tuple[str, ...], remaining: float, timeout: float
) -> bool:
    """True when ``description`` is in a wanted state; raises ModelNotReady on failure or time out."""
    state = description.get("state")
    if state in wanted:
        return True
    reason = description.get("reason")
    if state == "failed":
        raise errors.ModelNotReady(f"Endpoint '{name}' failed: {reason or 'the server gave no reason'}")
    if remaining <= 0:
        raise errors.ModelNotReady(
            f"Endpoint '{name}' is still {state} after {timeout:g}s "
            f"(waiting for {' or '.join(wanted)})" + (f": {reason}" if reason else "")
        )
    return False


def wanted_states(states: str | Iterable[str]) -> tuple[str, ...]:
    return (states,) if isinstance(states, str) else tuple(states)


def _pydantic_detail(item: dict[str, Any]) -> dict[str, Any]:
    loc = [str(part) for part in item.get("loc", ()) if part != "body"]
    return {"field": ".".join(loc), "message": str(item.get("msg", ""))}


def _float(value: str | None) -> float:
    try:
        return float(value) if value is not None else 0.0
    except ValueError:
        return 0.0


def _reason(exc: Exception) -> str:
    text = str(exc).strip()
    return text or type(exc).__name__
