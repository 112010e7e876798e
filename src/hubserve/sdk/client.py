"""The Python client of a hubserve server: management API, invocations, health.

It speaks only HTTP (httpx) and turns every non-2xx answer back into the
``hubserve.errors`` class the server raised, carrying the server's message and
field details, so callers catch the same types the server throws. The CLI is a
thin shell over this module and holds no HTTP code of its own.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal
from urllib.parse import quote

import httpx

from hubserve import __version__, errors

if TYPE_CHECKING:
    from hubserve.spec import EndpointSpec

DEFAULT_URL = "http://127.0.0.1:8080"
DEFAULT_TIMEOUT = 120.0  # seconds; long enough to ride out a cold start on the invocation route

Dialect = Literal["hf", "sagemaker"]


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


# The server's error type name -> the class to raise. Classes whose ``type`` repeats
# (SpecError shares "ValidationError"; ColdStartTimeout shares ModelNotReady's) are
# told apart by status below, or not at all where the wire carries no difference.
_BY_TYPE: dict[str, type[errors.HubserveError]] = {
    cls.type: cls
    for cls in (
        errors.HubserveError,
        errors.ValidationError,
        errors.Unauthorized,
        errors.EndpointNotFound,
        errors.EndpointExists,
        errors.PayloadTooLarge,
        errors.Throttled,
        errors.ModelError,
        errors.ModelNotReady,
        errors.ReplicaCrashed,
    )
}
_BY_STATUS: dict[int, type[errors.HubserveError]] = {
    cls.status: cls
    for cls in (
        errors.ValidationError,
        errors.SpecError,
        errors.Unauthorized,
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


def _pydantic_detail(item: dict[str, Any]) -> dict[str, Any]:
    loc = [str(part) for part in item.get("loc", ()) if part != "body"]
    return {"field": ".".join(loc), "message": str(item.get("msg", ""))}


class Client:
    """A hubserve server at ``url``; every method is one HTTP request (``wait_for`` polls).

    ``url`` and ``token`` default to $HUBSERVE_URL and $HUBSERVE_TOKEN, then to a
    local server without a token. Descriptions come back as plain dicts.
    """

    def __init__(
        self,
        url: str | None = None,
        token: str | None = None,
        timeout: float = DEFAULT_TIMEOUT,
        *,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        self.url = (url or os.environ.get("HUBSERVE_URL") or DEFAULT_URL).rstrip("/")
        self.token = token if token is not None else (os.environ.get("HUBSERVE_TOKEN") or None)
        self.timeout = timeout
        headers = {"User-Agent": f"hubserve-python/{__version__}"}
        if self.token:
            headers["Authorization"] = f"Bearer {self.token}"
        self._http = httpx.Client(base_url=self.url, headers=headers, timeout=timeout, transport=transport)

    # lifecycle -----------------------------------------------------------------
    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"Client(url={self.url!r})"

    # management ----------------------------------------------------------------
    def health(self) -> dict[str, Any]:
        return self._json("GET", "/health")

    def create_endpoint(self, spec: Mapping[str, Any] | EndpointSpec) -> dict[str, Any]:
        return self._json("POST", "/v1/endpoints", json=_spec_json(spec))

    def list_endpoints(self) -> list[dict[str, Any]]:
        payload = self._json("GET", "/v1/endpoints")
        return list(payload["items"] if isinstance(payload, dict) else payload)

    def get_endpoint(self, name: str) -> dict[str, Any]:
        return self._json("GET", _endpoint_path(name))

    def update_endpoint(self, name: str, spec: Mapping[str, Any] | EndpointSpec) -> dict[str, Any]:
        """Replace the whole spec (PUT); fields left out go back to their defaults."""
        return self._json("PUT", _endpoint_path(name), json=_spec_json(spec))

    def patch_endpoint(self, name: str, patch: Mapping[str, Any]) -> dict[str, Any]:
        """Change only the given fields (JSON merge patch: a null removes a field)."""
        return self._json("PATCH", _endpoint_path(name), json=dict(patch))

    def delete_endpoint(self, name: str) -> dict[str, Any]:
        return self._json("DELETE", _endpoint_path(name))

    def pause_endpoint(self, name: str) -> dict[str, Any]:
        return self._json("POST", _endpoint_path(name) + "/pause")

    def resume_endpoint(self, name: str) -> dict[str, Any]:
        return self._json("POST", _endpoint_path(name) + "/resume")

    def scale_to_zero(self, name: str) -> dict[str, Any]:
        """Stop every replica now; the next invocation starts one (a cold start)."""
        return self._json("POST", _endpoint_path(name) + "/scale-to-zero")

    def wait_for(
        self,
        name: str,
        states: str | Iterable[str] = ("running",),
        timeout: float = 600.0,
        *,
        interval: float = 0.5,
        on_poll: Callable[[dict[str, Any]], None] | None = None,
    ) -> dict[str, Any]:
        """Poll until the endpoint is in one of ``states`` and return its description.

        Raises ModelNotReady at once when the endpoint lands in ``failed`` (with the
        server's reason) unless ``failed`` is one of ``states``, and when ``timeout``
        seconds pass first.
        """
        wanted = (states,) if isinstance(states, str) else tuple(states)
        deadline = time.monotonic() + timeout
        while True:
            description = self.get_endpoint(name)
            if on_poll is not None:
                on_poll(description)
            state = description.get("state")
            if state in wanted:
                return description
            reason = description.get("reason")
            if state == "failed":
                raise errors.ModelNotReady(f"Endpoint '{name}' failed: {reason or 'the server gave no reason'}")
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise errors.ModelNotReady(
                    f"Endpoint '{name}' is still {state} after {timeout:g}s "
                    f"(waiting for {' or '.join(wanted)})" + (f": {reason}" if reason else "")
                )
            time.sleep(min(interval, remaining))

    # invocation ----------------------------------------------------------------
    def invoke(
        self,
        name: str,
        data: Any,
        *,
        dialect: Dialect = "hf",
        parameters: Mapping[str, Any] | None = None,
        content_type: str | None = None,
        accept: str | None = None,
    ) -> Invocation:
        """Send one request to an endpoint and return its answer with the timing headers.

        ``dialect="hf"`` posts the Hugging Face toolkit shape to ``/endpoints/{name}``:
        a mapping is sent as is, anything else becomes ``{"inputs": data}``, and
        ``parameters`` are merged in. ``dialect="sagemaker"`` posts to
        ``/endpoints/{name}/invocations`` as SageMaker's runtime does: bytes and str
        go as they are with ``content_type`` (default application/json), anything
        else is JSON-encoded.
        """
        if dialect == "hf":
            path = _endpoint_path(name, prefix="/endpoints")
            content, default_type = _hf_body(data, parameters), "application/json"
        elif dialect == "sagemaker":
            path = _endpoint_path(name, prefix="/endpoints") + "/invocations"
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
        response = self._request("POST", path, content=content, headers=headers)
        return _invocation(response)

    # plumbing ------------------------------------------------------------------
    def _json(self, method: str, path: str, **kwargs: Any) -> Any:
        response = self._request(method, path, **kwargs)
        if not response.content:
            return {}
        return response.json()

    def _request(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        try:
            response = self._http.request(method, path, **kwargs)
        except (httpx.ConnectError, httpx.ConnectTimeout) as exc:
            raise ServerUnreachable(
                f"hubserve isn't reachable at {self.url} ({_reason(exc)}). "
                "Start it with `hubserve serve`, or point --url / HUBSERVE_URL at a running server."
            ) from exc
        except httpx.TimeoutException as exc:
            error = ClientError(f"{method} {self.url}{path} got no answer within {self.timeout:g}s")
            error.status = 504
            raise error from exc
        except httpx.TransportError as exc:
            raise ClientError(f"{method} {self.url}{path} failed: {_reason(exc)}") from exc
        if response.status_code >= 400:
            raise error_from_response(response)
        return response


def _endpoint_path(name: str, prefix: str = "/v1/endpoints") -> str:
    return f"{prefix}/{quote(name, safe='')}"


def _spec_json(spec: Mapping[str, Any] | EndpointSpec) -> dict[str, Any]:
    if hasattr(spec, "model_dump"):  # an EndpointSpec; checked by duck type to keep pydantic unimported
        return spec.model_dump(mode="json")  # type: ignore[union-attr,no-any-return]
    return dict(spec)  # type: ignore[arg-type]


def _hf_body(data: Any, parameters: Mapping[str, Any] | None) -> bytes:
    if isinstance(data, (bytes, bytearray)):
        if parameters:
            raise ValueError("parameters cannot be merged into a raw bytes body")
        return bytes(data)
    body = dict(data) if isinstance(data, Mapping) else {"inputs": data}
    if parameters:
        body["parameters"] = {**(body.get("parameters") or {}), **parameters}
    return json.dumps(body).encode()


def _invocation(response: httpx.Response) -> Invocation:
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


def _float(value: str | None) -> float:
    try:
        return float(value) if value is not None else 0.0
    except ValueError:
        return 0.0


def _reason(exc: Exception) -> str:
    text = str(exc).strip()
    return text or type(exc).__name__
