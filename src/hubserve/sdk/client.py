"""The Python client of a hubserve server: management API, invocations, health.

It speaks only HTTP (httpx) and turns every non-2xx answer back into the
``hubserve.errors`` class the server raised, carrying the server's message and
field details, so callers catch the same types the server throws. The CLI is a
thin shell over this module and holds no HTTP code of its own. Routes, bodies and
answer parsing live in ``sdk.http``, shared with ``AsyncClient``.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

import httpx

from hubserve.sdk import http
from hubserve.sdk.http import (
    DEFAULT_TIMEOUT,
    DEFAULT_URL,
    Call,
    ClientError,
    Dialect,
    Invocation,
    ServerUnreachable,
    StreamEvent,
    error_from_response,
)

if TYPE_CHECKING:
    from hubserve.spec import EndpointSpec

__all__ = [
    "DEFAULT_TIMEOUT",
    "DEFAULT_URL",
    "Client",
    "ClientError",
    "Dialect",
    "Invocation",
    "ServerUnreachable",
    "StreamEvent",
    "error_from_response",
]

TARGET_MODEL_HEADER = "X-Amzn-SageMaker-Target-Model"  # what boto3's invoke_endpoint(TargetModel=...) sends


# --- multi-model endpoints (routes shared with AsyncClient) -------------------------------


def endpoint_models_call(name: str) -> Call:
    """GET /v1/endpoints/{name}/models: a multi-model endpoint's models, their state and the replicas' memory."""
    return Call("GET", http.endpoint_path(name) + "/models")


def targeted(call: Call, target_model: str | None) -> Call:
    """``call`` (an invocation) aimed at one model of a multi-model endpoint; unchanged when ``target_model`` is None.

    The Hugging Face shape goes to ``/endpoints/{name}/models/{model}``; SageMaker's keeps its
    ``/invocations`` route and names the model in the TargetModel header, as boto3 does.
    """
    if target_model is None:
        return call
    if not target_model:
        raise ValueError("target_model must name a model (a folder under the endpoint's source)")
    if call.path.endswith("/invocations"):
        return dataclasses.replace(call, headers={**(call.headers or {}), TARGET_MODEL_HEADER: target_model})
    return dataclasses.replace(call, path=f"{call.path}/models/{quote(target_model, safe='')}")


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
        self.url = http.resolve_url(url)
        self.token = http.resolve_token(token)
        self.timeout = timeout
        self._http = httpx.Client(
            base_url=self.url, headers=http.default_headers(self.token), timeout=timeout, transport=transport
        )

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
        return self._call(http.health())  # type: ignore[no-any-return]

    def create_endpoint(self, spec: Mapping[str, Any] | EndpointSpec) -> dict[str, Any]:
        return self._call(http.create_endpoint(spec))  # type: ignore[no-any-return]

    def list_endpoints(self) -> list[dict[str, Any]]:
        return http.items(self._call(http.list_endpoints()))

    def get_endpoint(self, name: str) -> dict[str, Any]:
        return self._call(http.get_endpoint(name))  # type: ignore[no-any-return]

    def get_metrics(self, name: str, window: str = "1h") -> dict[str, Any]:
        """Rolling-window metrics of one endpoint: counts, latency percentiles, cold starts, levels."""
        return self._call(http.get_metrics(name, window))  # type: ignore[no-any-return]

    def get_logs(self, name: str, *, since: str | None = None, tail: int = 200, source: str | None = None) -> dict[str, Any]:
        """Log lines of an endpoint (replicas' output, hubserve's events and access lines) in time order."""
        return self._call(http.get_logs(name, since, tail, source))  # type: ignore[no-any-return]

    def prometheus_metrics(self) -> str:
        """Every endpoint's metrics in the Prometheus text format (what /metrics serves)."""
        return self._call(http.prometheus_metrics())  # type: ignore[no-any-return]

    def endpoint_models(self, name: str) -> dict[str, Any]:
        """A multi-model endpoint's models (state, replicas, size, last use, load time, hits and misses)
        and each replica's memory used and budget; ValidationError for a single-model endpoint."""
        return self._call(endpoint_models_call(name))  # type: ignore[no-any-return]

    def update_endpoint(self, name: str, spec: Mapping[str, Any] | EndpointSpec) -> dict[str, Any]:
        """Replace the whole spec (PUT); fields left out go back to their defaults."""
        return self._call(http.update_endpoint(name, spec))  # type: ignore[no-any-return]

    def patch_endpoint(self, name: str, patch: Mapping[str, Any]) -> dict[str, Any]:
        """Change only the given fields (JSON merge patch: a null removes a field)."""
        return self._call(http.patch_endpoint(name, patch))  # type: ignore[no-any-return]

    def delete_endpoint(self, name: str) -> dict[str, Any]:
        return self._call(http.delete_endpoint(name))  # type: ignore[no-any-return]

    def pause_endpoint(self, name: str) -> dict[str, Any]:
        return self._call(http.endpoint_action(name, "pause"))  # type: ignore[no-any-return]

    def resume_endpoint(self, name: str) -> dict[str, Any]:
        return self._call(http.endpoint_action(name, "resume"))  # type: ignore[no-any-return]

    def scale_to_zero(self, name: str) -> dict[str, Any]:
        """Stop every replica now; the next invocation starts one (a cold start)."""
        return self._call(http.endpoint_action(name, "scale-to-zero"))  # type: ignore[no-any-return]

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
        wanted = http.wanted_states(states)
        deadline = time.monotonic() + timeout
        while True:
            description = self.get_endpoint(name)
            if on_poll is not None:
                on_poll(description)
            remaining = deadline - time.monotonic()
            if http.endpoint_wait_verdict(name, description, wanted, remaining, timeout):
                return description
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
        target_model: str | None = None,
    ) -> Invocation:
        """Send one request to an endpoint and return its answer with the timing headers.

        ``dialect="hf"`` posts the Hugging Face toolkit shape to ``/endpoints/{name}``:
        a mapping is sent as is, anything else becomes ``{"inputs": data}``, and
        ``parameters`` are merged in. ``dialect="sagemaker"`` posts to
        ``/endpoints/{name}/invocations`` as SageMaker's runtime does: bytes and str
        go as they are with ``content_type`` (default application/json), anything
        else is JSON-encoded. ``target_model`` names the model of a multi-model endpoint that answers
        (``/endpoints/{name}/models/{model}``, or SageMaker's TargetModel header); a name the
        endpoint lacks raises TargetModelNotFound (ValidationError in the SageMaker dialect, as AWS).
        """
        call = http.invoke(name, data, dialect=dialect, parameters=parameters, content_type=content_type, accept=accept)
        return self._call(targeted(call, target_model))  # type: ignore[no-any-return]

    def stream(
        self, name: str, data: Any, *, parameters: Mapping[str, Any] | None = None, target_model: str | None = None
    ) -> Iterator[StreamEvent]:
        """Invoke ``name`` as a stream and yield its server-sent events as they arrive.

        The body is the Hugging Face toolkit shape with ``"stream": true`` (a mapping as is, anything
        else as ``{"inputs": data}``, ``parameters`` merged in). A text-generation endpoint sends one
        event per token (``event.text``; the last event's ``data["generated_text"]`` is the whole text).
        A refusal raises before the first event, a failure after it (an ``error`` event) raises the
        typed error where it happened; closing the generator early cancels the rest in the replica.
        ``target_model`` names the model of a multi-model endpoint, as ``invoke``'s does.
        """
        call = targeted(http.stream(name, data, parameters=parameters), target_model)
        try:
            with self._http.stream(call.method, call.path, **call.kwargs()) as response:
                if response.status_code >= 400:
                    response.read()
                refused = http.stream_refused(response, name)
                if refused is not None:
                    raise refused
                parser = http.EventParser()
                for line in response.iter_lines():
                    event = parser.feed(line)
                    if event is not None:
                        yield event
                parser.finish()
        except httpx.TransportError as exc:
            raise http.transport_error(exc, call.method, self.url, call.path, self.timeout) from exc

    # asynchronous inference ----------------------------------------------------
    def invoke_async(
        self,
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
    ) -> dict[str, Any]:
        """Queue one inference (202); returns ``{inferenceId, outputLocation, failureLocation, status}``.

        Give the payload as ``data`` (bytes and str go as they are, an iterable of bytes is
        streamed, anything else is JSON-encoded) or name it with ``input_location`` (a path
        under the server's storage roots, file:// or s3://). The same ``inference_id`` twice
        returns the first inference.
        """
        call = http.invoke_async(
            name, data, input_location=input_location, output_location=output_location, content_type=content_type,
            accept=accept, inference_id=inference_id, ttl_s=ttl_s, timeout_s=timeout_s,
        )  # fmt: skip
        return self._call(call)  # type: ignore[no-any-return]

    def get_async_inference(self, name: str, inference_id: str) -> dict[str, Any]:
        """Status, attempts, timestamps, output or failure location and error of one inference."""
        return self._call(http.get_async_inference(name, inference_id))  # type: ignore[no-any-return]

    def list_async_inferences(self, name: str, status: str | None = None, limit: int = 100) -> list[dict[str, Any]]:
        """The endpoint's async inferences, newest first."""
        return http.items(self._call(http.list_async_inferences(name, status, limit)))

    def wait_async_inference(
        self, name: str, inference_id: str, timeout: float = 3600.0, *, interval: float = 0.5
    ) -> dict[str, Any]:
        """Poll until the inference is succeeded, failed or expired and return it (failures are not raised)."""
        deadline = time.monotonic() + timeout
        while True:
            inference = self.get_async_inference(name, inference_id)
            if inference.get("status") in http.ASYNC_DONE:
                return inference
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise ClientError(f"async inference {inference_id} is still {inference.get('status')} after {timeout:g}s")
            time.sleep(min(interval, remaining))

    # batch transform -----------------------------------------------------------
    def create_batch_job(self, request: Mapping[str, Any]) -> dict[str, Any]:
        """Create a batch transform job and start it; ``request`` holds POST /v1/batch-jobs's fields
        (``endpoint`` or ``model``, ``input``, ``output``, ``batch_size``, ``split_type``, ...)."""
        return self._call(http.create_batch_job(request))  # type: ignore[no-any-return]

    def list_batch_jobs(self) -> list[dict[str, Any]]:
        return http.items(self._call(http.list_batch_jobs()))

    def get_batch_job(self, job_id: str) -> dict[str, Any]:
        """Status, records (total, done, failed), records_per_s, eta_s and output locations."""
        return self._call(http.batch_job(job_id))  # type: ignore[no-any-return]

    def stop_batch_job(self, job_id: str) -> dict[str, Any]:
        return self._call(http.batch_job(job_id, "stop"))  # type: ignore[no-any-return]

    def start_batch_job(self, job_id: str) -> dict[str, Any]:
        """Resume a stopped (or failed) job from its last committed chunk."""
        return self._call(http.batch_job(job_id, "start"))  # type: ignore[no-any-return]

    def wait_batch_job(
        self,
        job_id: str,
        timeout: float | None = None,
        *,
        interval: float = 0.5,
        on_poll: Callable[[dict[str, Any]], None] | None = None,
    ) -> dict[str, Any]:
        """Poll until the job is completed, failed or stopped and return it (a failure is not raised)."""
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            job = self.get_batch_job(job_id)
            if on_poll is not None:
                on_poll(job)
            if job.get("status") in http.BATCH_DONE:
                return job
            if deadline is not None and time.monotonic() >= deadline:
                raise ClientError(f"batch job {job_id} is still {job.get('status')} after {timeout:g}s")
            time.sleep(interval)

    # the model registry -----------------------------------------------------------
    def register_model(self, group: str, source: str, *, revision: str | None = None, task: str | None = None,
                       metrics: dict[str, Any] | None = None, description: str | None = None) -> dict[str, Any]:  # fmt: skip
        """Register the group's next version from a local folder (copied into the registry), a Hub id or a URI."""
        call = http.register_model(group, source, revision=revision, task=task, metrics=metrics, description=description)
        return self._call(call)  # type: ignore[no-any-return]

    def list_model_groups(self) -> list[dict[str, Any]]:
        """Model groups: name, how many versions, the latest Approved one."""
        return http.items(self._call(http.list_model_groups()))

    def list_model_versions(self, group: str) -> list[dict[str, Any]]:
        return http.items(self._call(http.list_model_versions(group)))

    def get_model_version(self, group: str, version: int) -> dict[str, Any]:
        """A version's record: source, task, metrics, sha256, approval status and the endpoints that run it."""
        return self._call(http.model_version(group, version))  # type: ignore[no-any-return]

    def approve_model_version(self, group: str, version: int) -> dict[str, Any]:
        """Approve a version; endpoints that follow ``registry://group/latest-approved`` roll to it."""
        return self._call(http.model_version(group, version, "approve"))  # type: ignore[no-any-return]

    def reject_model_version(self, group: str, version: int) -> dict[str, Any]:
        return self._call(http.model_version(group, version, "reject"))  # type: ignore[no-any-return]

    def set_model_approval(self, group: str, version: int, approval_status: str) -> dict[str, Any]:
        """Set the approval status by name, PendingManualApproval included (as SageMaker's update_model_package)."""
        return self._call(http.model_approval(group, version, approval_status))  # type: ignore[no-any-return]

    def delete_model_version(self, group: str, version: int) -> dict[str, Any]:
        """Delete a version no endpoint uses (a conflict error names the endpoints that do)."""
        return self._call(http.model_version(group, version, "delete"))  # type: ignore[no-any-return]

    # tokens and the audit log (admin scope) ---------------------------------------
    def create_token(self, name: str, scopes: Iterable[str], endpoints: Iterable[str] | None = None) -> dict[str, Any]:
        """A new scoped token: its record plus ``token``, the secret shown this once (keep it)."""
        return self._call(http.create_token(name, scopes, endpoints))  # type: ignore[no-any-return]

    def list_tokens(self, include_revoked: bool = False) -> list[dict[str, Any]]:
        """Token records (id, name, scopes, endpoints, created, last used, revoked), never secrets."""
        return http.items(self._call(http.list_tokens(include_revoked)))

    def get_token(self, token_id: str) -> dict[str, Any]:
        return self._call(http.token(token_id))  # type: ignore[no-any-return]

    def revoke_token(self, token_id: str) -> dict[str, Any]:
        """Revoke a token: every request that sends it is refused from now on."""
        return self._call(http.token(token_id, revoke=True))  # type: ignore[no-any-return]

    def audit(self, limit: int = 100, since: str | None = None, endpoint: str | None = None) -> list[dict[str, Any]]:
        """The audit log of changes, newest first; ``since``: an ISO 8601 time; ``endpoint``: one target."""
        return http.items(self._call(http.audit(limit, since, endpoint)))

    # plumbing ------------------------------------------------------------------
    def _call(self, call: Call) -> Any:
        return http.read(call, self._request(call.method, call.path, **call.kwargs()))

    def _json(self, method: str, path: str, **kwargs: Any) -> Any:
        return http.read(Call(method, path), self._request(method, path, **kwargs))

    def _request(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        try:
            response = self._http.request(method, path, **kwargs)
        except httpx.TransportError as exc:
            raise http.transport_error(exc, method, self.url, path, self.timeout) from exc
        if response.status_code >= 400:
            raise error_from_response(response)
        return response
