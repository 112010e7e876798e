"""The SageMaker Python SDK's shape over hubserve: ``HuggingFaceModel(...).deploy(...)`` -> ``Predictor``.

Code written for ``sagemaker.huggingface.HuggingFaceModel`` and ``sagemaker.serverless.
ServerlessInferenceConfig`` runs against hubserve with one changed import::

    from hubserve.sdk import HuggingFaceModel, ServerlessInferenceConfig

What maps onto what:
- ``env={"HF_MODEL_ID": ..., "HF_TASK": ..., "HF_MODEL_REVISION": ...}`` -> ``model.source``, ``model.task``,
  ``model.revision``; any other ``env`` entries become the endpoint's ``env``.
- ``model_data`` (a local folder, ``file://`` or ``s3://``) wins over ``HF_MODEL_ID``; local paths are
  made absolute here because the server resolves them, not this process.
- ``serverless_inference_config`` -> serverless compute (``memory_mb``, ``max_concurrency``,
  ``provisioned_concurrency``); ``instance_type``/``initial_instance_count`` -> dedicated compute
  (the size from ``instance_types.hubserve_instance``, min = max replicas = the count).
- ``role``, ``transformers_version``, ``pytorch_version``, ``py_version``, ``image_uri`` choose
  containers and IAM on AWS; hubserve has neither, so they are accepted and ignored with a note
  (``model.notes`` and an INFO log line).
- ``deploy`` waits until the endpoint serves (like SageMaker's ``wait=True``) and raises
  ``ModelNotReady`` with the server's reason when it fails.
"""

from __future__ import annotations

import json
import logging
import os
import re
import secrets
import struct
import time
import zlib
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from hubserve.instance_types import hubserve_instance
from hubserve.sdk.client import Client, ClientError, error_from_response

log = logging.getLogger("hubserve.sdk")

READY_STATES = ("running", "scaledToZero")
_MODEL_ENV = ("HF_MODEL_ID", "HF_TASK", "HF_MODEL_REVISION")
_IGNORED = ("role", "transformers_version", "pytorch_version", "tensorflow_version", "py_version", "image_uri")


class Session:
    """Where hubserve runs: ``url`` and ``token``, defaulting to $HUBSERVE_URL and $HUBSERVE_TOKEN.

    Plays the part of ``sagemaker.Session``; pass it as ``sagemaker_session=``.
    """

    def __init__(self, url: str | None = None, token: str | None = None, timeout: float = 120.0) -> None:
        self.client = Client(url=url, token=token, timeout=timeout)

    @property
    def url(self) -> str:
        return self.client.url

    def __repr__(self) -> str:
        return f"Session(url={self.url!r})"


@dataclass(frozen=True)
class ServerlessInferenceConfig:
    """SageMaker's serverless settings: memory (1024..6144 MB) and concurrency."""

    memory_size_in_mb: int = 2048
    max_concurrency: int = 5
    provisioned_concurrency: int | None = None


@dataclass(frozen=True)
class AsyncInferenceConfig:
    """SageMaker's async settings; ``output_path`` becomes ``async_inference.output_location``."""

    output_path: str | None = None
    max_concurrent_invocations_per_instance: int | None = None


@dataclass(frozen=True)
class WaiterConfig:
    """How long ``AsyncInferenceResponse.get_result`` polls: ``max_attempts`` x ``delay`` seconds."""

    max_attempts: int = 60
    delay: float = 15.0


class AsyncInferenceModelError(ClientError):
    """The async inference failed or expired; the message is the server's."""

    type = "AsyncInferenceModelError"


class ObjectNotExistedError(ClientError):
    """``get_result()`` without a waiter found no result yet (SageMaker's name for it)."""

    type = "ObjectNotExistedError"


class ModelStreamError(ClientError):
    """The model failed after the stream's first part (SageMaker's ``ModelStreamError``)."""

    type = "ModelStreamError"

    def __init__(self, message: str, code: str | None = None) -> None:
        super().__init__(message)
        self.code = code


class InternalStreamFailure(ClientError):
    """The stream was cut short by anything but the model (SageMaker's ``InternalStreamFailure``)."""

    type = "InternalStreamFailure"


class _EventStreamDecoder:
    """AWS event-stream messages from bytes as they arrive: ``PayloadPart`` events as boto3 gives them;
    an exception message raises (see ``api/sagemaker/eventstream.py`` for the framing)."""

    def __init__(self) -> None:
        self._buffer = b""

    def feed(self, chunk: bytes) -> Iterator[dict[str, Any]]:
        self._buffer += chunk
        while len(self._buffer) >= 12:
            total, header_length, prelude_crc = struct.unpack(">III", self._buffer[:12])
            if zlib.crc32(self._buffer[:8]) != prelude_crc:
                raise InternalStreamFailure("the response stream is corrupt (a message's prelude fails its CRC)")
            if len(self._buffer) < total:
                return
            message, self._buffer = self._buffer[:total], self._buffer[total:]
            if zlib.crc32(message[:-4]) != struct.unpack(">I", message[-4:])[0]:
                raise InternalStreamFailure("the response stream is corrupt (a message fails its CRC)")
            headers = _headers(message[12 : 12 + header_length])
            payload = message[12 + header_length : -4]
            if headers.get(":message-type") == "exception":
                raise _stream_exception(headers.get(":exception-type", ""), payload)
            if headers.get(":event-type") == "PayloadPart":
                yield {"PayloadPart": {"Bytes": payload}}


def _headers(raw: bytes) -> dict[str, str]:
    """String headers (type 7), the only kind a response stream carries."""
    found: dict[str, str] = {}
    at = 0
    while at < len(raw):
        size = raw[at]
        name = raw[at + 1 : at + 1 + size].decode()
        at += 1 + size
        kind = raw[at]
        if kind != 7:
            raise InternalStreamFailure(f"the response stream has a header of type {kind}, which is not a string")
        length = struct.unpack(">H", raw[at + 1 : at + 3])[0]
        found[name] = raw[at + 3 : at + 3 + length].decode()
        at += 3 + length
    return found


def _stream_exception(kind: str, payload: bytes) -> ClientError:
    try:
        body = json.loads(payload)
    except ValueError:
        body = {"Message": payload.decode(errors="replace")}
    message = str(body.get("Message") or body.get("message") or "the stream failed")
    if kind == "ModelStreamError":
        return ModelStreamError(message, body.get("ErrorCode"))
    return InternalStreamFailure(message)


class PollingTimeoutError(ClientError):
    """``get_result(waiter_config)`` ran out of attempts before the inference finished."""

    type = "PollingTimeoutError"


def _session_or_default(session: Session | None) -> Session:
    return session if session is not None else Session()


class Predictor:
    """An endpoint to call: JSON in, JSON out (the Hugging Face predictor's default serializers)."""

    def __init__(self, endpoint_name: str, sagemaker_session: Session | None = None) -> None:
        self.endpoint_name = endpoint_name
        self.sagemaker_session = _session_or_default(sagemaker_session)

    @property
    def _client(self) -> Client:
        return self.sagemaker_session.client

    def predict(self, data: Any, initial_args: dict[str, Any] | None = None) -> Any:
        """POST ``data`` as JSON to the endpoint (SageMaker's InvokeEndpoint) and return the parsed answer."""
        args = initial_args or {}
        body = data if isinstance(data, (bytes, bytearray)) else json.dumps(data)  # JSONSerializer: str too
        answer = self._client.invoke(
            self.endpoint_name, body, dialect="sagemaker",
            content_type=args.get("ContentType"), accept=args.get("Accept") or "application/json",
        )  # fmt: skip
        return answer.body

    def predict_stream(
        self,
        data: Any,
        initial_args: dict[str, Any] | None = None,
        inference_id: str | None = None,
        custom_attributes: str | None = None,
        iterator: Callable[[Iterator[dict[str, Any]]], Iterable[Any]] | None = None,
    ) -> Iterable[Any]:
        """InvokeEndpointWithResponseStream: the answer's parts as they arrive (the SageMaker SDK's
        ``ByteIterator``: each ``PayloadPart``'s bytes; a generative endpoint's are TGI's ``data:{...}``
        events). ``iterator`` takes the events as boto3 gives them (``{"PayloadPart": {"Bytes": ...}}``),
        so ``sagemaker.iterators.LineIterator`` works too. A failure after the first part raises
        ``ModelStreamError`` or ``InternalStreamFailure``; leaving the loop early cancels the rest."""
        args = initial_args or {}
        body = data if isinstance(data, (bytes, bytearray)) else json.dumps(data)
        headers = {"Content-Type": args.get("ContentType") or "application/json",
                   "X-Amzn-SageMaker-Accept": args.get("Accept") or "application/json"}  # fmt: skip
        if inference_id:
            headers["X-Amzn-SageMaker-Inference-Id"] = inference_id
        if custom_attributes:
            headers["X-Amzn-SageMaker-Custom-Attributes"] = custom_attributes
        events = self._response_stream(bytes(body) if isinstance(body, bytearray) else body, headers)
        if iterator is not None:
            return iterator(events)
        return (event["PayloadPart"]["Bytes"] for event in events)

    def _response_stream(self, body: bytes | str, headers: dict[str, str]) -> Iterator[dict[str, Any]]:
        path = f"/endpoints/{self.endpoint_name}/invocations-response-stream"
        with self._client._http.stream("POST", path, content=body, headers=headers) as response:
            if response.status_code >= 400:
                response.read()
                raise error_from_response(response)
            decoder = _EventStreamDecoder()
            for chunk in response.iter_bytes():
                yield from decoder.feed(chunk)

    def predict_async(
        self, data: Any = None, input_path: str | None = None, inference_id: str | None = None
    ) -> AsyncInferenceResponse:
        """Queue one inference (InvokeEndpointAsync); ``get_result`` on the answer fetches its output."""
        accepted = self._client.invoke_async(
            self.endpoint_name, data, input_location=input_path, inference_id=inference_id
        )
        return AsyncInferenceResponse(self, accepted["inferenceId"], accepted.get("outputLocation"),
                                      accepted.get("failureLocation"))  # fmt: skip

    def delete_endpoint(self, delete_endpoint_config: bool = True) -> None:
        """Delete the endpoint (hubserve has no separate endpoint config to delete)."""
        self._client.delete_endpoint(self.endpoint_name)

    def delete_model(self) -> None:
        """Nothing to do: hubserve keeps no model apart from its endpoint."""

    def describe(self) -> dict[str, Any]:
        return self._client.get_endpoint(self.endpoint_name)

    def __repr__(self) -> str:
        return f"Predictor(endpoint_name={self.endpoint_name!r})"


class AsyncInferenceResponse:
    """One queued inference; ``get_result`` returns its output like SageMaker's, parsed as JSON when it is."""

    def __init__(self, predictor: Predictor, inference_id: str, output_path: str | None, failure_path: str | None):
        self.predictor_async = predictor
        self.inference_id = inference_id
        self.output_path = output_path
        self.failure_path = failure_path

    def get_result(self, waiter_config: WaiterConfig | None = None) -> Any:
        """The output; without ``waiter_config`` one look (ObjectNotExistedError if not done yet)."""
        client, name = self.predictor_async._client, self.predictor_async.endpoint_name
        attempts = 1 if waiter_config is None else max(1, waiter_config.max_attempts)
        status: Any = None  # set by the first attempt; there is always one
        for attempt in range(attempts):
            record = client.get_async_inference(name, self.inference_id)
            status = record.get("status")
            if status == "succeeded":
                return _read_output(record.get("outputLocation") or self.output_path or "")
            if status in ("failed", "expired"):
                error = record.get("error") or {}
                raise AsyncInferenceModelError(
                    f"async inference {self.inference_id} {status}: {error.get('message') or 'no reason given'}"
                )
            if waiter_config is not None and attempt + 1 < attempts:
                time.sleep(waiter_config.delay)
        if waiter_config is None:
            raise ObjectNotExistedError(f"async inference {self.inference_id} is still {status}; it could still be running")
        raise PollingTimeoutError(
            f"async inference {self.inference_id} is still {status} after {attempts} attempts "
            f"{waiter_config.delay:g}s apart"
        )


def _read_output(location: str) -> Any:
    """Read an output location (a path on this machine, or s3:// through fsspec) and parse JSON if it is."""
    if location.startswith("s3://"):
        import fsspec

        endpoint = os.environ.get("HUBSERVE_S3_ENDPOINT_URL") or os.environ.get("AWS_ENDPOINT_URL")
        options = {"client_kwargs": {"endpoint_url": endpoint}} if endpoint else {}
        with fsspec.open(location, "rb", **options) as file:
            raw = file.read()
    else:
        raw = Path(location.removeprefix("file://")).read_bytes()
    try:
        return json.loads(raw)
    except ValueError:
        return raw


class HuggingFaceModel:
    """A model to deploy: a Hub id (``env["HF_MODEL_ID"]``) or ``model_data`` (a folder, file:// or s3://)."""

    def __init__(
        self,
        role: str | None = None,
        model_data: str | os.PathLike[str] | None = None,
        entry_point: str | None = None,
        transformers_version: str | None = None,
        pytorch_version: str | None = None,
        py_version: str | None = None,
        image_uri: str | None = None,
        env: dict[str, str] | None = None,
        sagemaker_session: Session | None = None,
        name: str | None = None,
        **kwargs: Any,
    ) -> None:
        self.env = dict(env or {})
        self.model_data = None if model_data is None else str(model_data)
        self.entry_point = entry_point
        self.name = name
        self.sagemaker_session = sagemaker_session
        self.endpoint_name: str | None = None
        self.notes: list[str] = []
        given = {"role": role, "transformers_version": transformers_version, "pytorch_version": pytorch_version,
                 "py_version": py_version, "image_uri": image_uri, **kwargs}  # fmt: skip
        ignored = sorted(key for key, value in given.items() if value is not None)
        if ignored:
            self._note(f"ignored {', '.join(ignored)}: they choose AWS containers and IAM, which hubserve does not use")
        if self.model_data is None and not self.env.get("HF_MODEL_ID"):
            raise ValueError("give model_data (a folder, file:// or s3://) or env['HF_MODEL_ID'] (a Hub repo id)")

    def _note(self, text: str) -> None:
        self.notes.append(text)
        log.info("HuggingFaceModel: %s", text)

    def deploy(
        self,
        initial_instance_count: int | None = None,
        instance_type: str | None = None,
        endpoint_name: str | None = None,
        serverless_inference_config: ServerlessInferenceConfig | None = None,
        async_inference_config: AsyncInferenceConfig | None = None,
        wait: bool = True,
        timeout: float = 600.0,
        **kwargs: Any,
    ) -> Predictor:
        """Create the endpoint and (``wait=True``) wait until it serves; returns its ``Predictor``."""
        if kwargs:
            self._note(f"ignored deploy arguments {', '.join(sorted(kwargs))}")
        name = endpoint_name or self.name or _endpoint_name(self._source())
        spec = self.endpoint_spec(name, initial_instance_count, instance_type, serverless_inference_config,
                                  async_inference_config)  # fmt: skip
        session = _session_or_default(self.sagemaker_session)
        session.client.create_endpoint(spec)
        self.endpoint_name = name
        if wait:
            session.client.wait_for(name, READY_STATES, timeout=timeout)
        return Predictor(name, sagemaker_session=session)

    def endpoint_spec(
        self,
        name: str,
        initial_instance_count: int | None = None,
        instance_type: str | None = None,
        serverless_inference_config: ServerlessInferenceConfig | None = None,
        async_inference_config: AsyncInferenceConfig | None = None,
    ) -> dict[str, Any]:
        """The hubserve endpoint spec that ``deploy`` creates (no I/O; the server validates it)."""
        if (serverless_inference_config is None) == (instance_type is None):
            raise ValueError("give serverless_inference_config, or instance_type (with initial_instance_count)")
        model: dict[str, Any] = {"source": self._source()}
        if self.env.get("HF_TASK"):
            model["task"] = self.env["HF_TASK"]
        if self.env.get("HF_MODEL_REVISION") and self.model_data is None:
            model["revision"] = self.env["HF_MODEL_REVISION"]
        compute = _compute(serverless_inference_config, instance_type, initial_instance_count)
        spec: dict[str, Any] = {"name": name, "model": model, "compute": compute}
        env = {key: str(value) for key, value in self.env.items() if key not in _MODEL_ENV}
        if env:
            spec["env"] = env
        if self.entry_point:
            spec["custom_code"] = True
            self._note(f"entry_point {self.entry_point}: the model folder's code/inference.py runs (custom_code)")
        if async_inference_config is not None:
            config = async_inference_config
            wanted = {
                "output_location": config.output_path,
                "max_concurrent_invocations_per_replica": config.max_concurrent_invocations_per_instance,
            }
            spec["async_inference"] = {key: value for key, value in wanted.items() if value is not None}
        return spec

    def _source(self) -> str:
        if self.model_data is None:
            return self.env["HF_MODEL_ID"]
        data = self.model_data
        if data.startswith("s3://"):
            return data
        return str(Path(data.removeprefix("file://")).expanduser().resolve())

    def delete_model(self) -> None:
        """Nothing to do: hubserve keeps no model apart from its endpoint."""


def _compute(
    serverless: ServerlessInferenceConfig | None, instance_type: str | None, count: int | None
) -> dict[str, Any]:
    if serverless is not None:
        return {
            "type": "serverless",
            "memory_mb": serverless.memory_size_in_mb,
            "max_concurrency": serverless.max_concurrency,
            "provisioned_concurrency": serverless.provisioned_concurrency or 0,
        }
    replicas = 1 if count is None else count
    instance = hubserve_instance(instance_type or "")
    return {"type": "dedicated", "instance": instance, "min_replicas": replicas, "max_replicas": max(1, replicas)}


def _endpoint_name(source: str) -> str:
    """A DNS-safe unique name from the model's last path part, as SageMaker's name_from_base does."""
    base = re.sub(r"[^a-z0-9-]+", "-", Path(source.rstrip("/")).name.lower()).strip("-")[:36].strip("-") or "model"
    return f"{base}-{time.strftime('%Y%m%d-%H%M%S')}-{secrets.token_hex(2)}"
