"""Asynchronous inference on a real server: inline and by-reference payloads, local and S3 results,
status transitions, webhooks, timeouts, TTL expiry, a server killed mid-inference, a 200 MB payload."""

from __future__ import annotations

import json
import shutil
import signal
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import pytest
from s3_server import S3Server

from hubserve import errors
from hubserve.sdk.client import Client
from tests.integration.conftest import RunningServer, start_server, stop_server, wait_for_state

SLEEPY_HANDLER = textwrap.dedent(
    '''
    """Sleeps as long as the request asks, then echoes it: a slow model for async tests."""
    import time


    class EndpointHandler:
        def __init__(self, path=""):
            pass

        def __call__(self, data):
            time.sleep(float(data.get("sleep", 0)))
            return {"echo": data.get("inputs"), "slept": data.get("sleep", 0)}
    '''
)
DONE = {"succeeded", "failed", "expired"}


class Webhooks:
    """A real HTTP receiver on 127.0.0.1 that records every JSON POST."""

    def __init__(self) -> None:
        self.received: list[dict[str, Any]] = []
        received = self.received

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("content-length", 0)))
                received.append({"path": self.path, **json.loads(body)})
                self.send_response(204)
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}"
        threading.Thread(target=self._server.serve_forever, daemon=True).start()

    def wait_for(self, inference_id: str, timeout: float = 30) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for call in self.received:
                if call["inferenceId"] == inference_id:
                    return call
            time.sleep(0.05)
        raise AssertionError(f"no webhook for {inference_id}: {self.received}")

    def close(self) -> None:
        self._server.shutdown()


@pytest.fixture(scope="module")
def webhooks() -> Iterator[Webhooks]:
    receiver = Webhooks()
    yield receiver
    receiver.close()


@pytest.fixture(scope="module")
def sleepy_model(tmp_path_factory: pytest.TempPathFactory, tiny_models: dict[str, Path]) -> Path:
    folder = tmp_path_factory.mktemp("sleepy") / "model"
    shutil.copytree(tiny_models["text-classification"], folder)
    (folder / "handler.py").write_text(SLEEPY_HANDLER)
    return folder


def sleepy_spec(name: str, model: Path, webhooks: Webhooks | None = None, **async_fields: Any) -> dict[str, Any]:
    notification = {"success_url": f"{webhooks.url}/ok", "error_url": f"{webhooks.url}/error"} if webhooks else None
    return {
        "name": name,
        "model": {"source": str(model)},
        "custom_code": True,
        "compute": {"type": "serverless", "max_concurrency": 1},
        "async_inference": {"notification": notification, "max_concurrent_invocations_per_replica": 1, **async_fields},
    }


@pytest.fixture(scope="module")
def endpoints(api: httpx.Client, tiny_models: dict[str, Path], sleepy_model: Path, webhooks: Webhooks) -> dict[str, str]:
    """On the session server: a real tiny classifier and a sleepy custom handler, both with webhooks."""
    notification = {"success_url": f"{webhooks.url}/ok", "error_url": f"{webhooks.url}/error"}
    tc = {"name": "async-tc", "model": {"source": str(tiny_models["text-classification"])},
          "async_inference": {"notification": notification}}  # fmt: skip
    for spec in (tc, sleepy_spec("async-sleep", sleepy_model, webhooks)):
        response = api.post("/v1/endpoints", json=spec)
        assert response.status_code == 201, response.text
    for name in ("async-tc", "async-sleep"):
        wait_for_state(api, name, {"running"})
    return {"tc": "async-tc", "sleep": "async-sleep"}


def wait_done(api: httpx.Client, endpoint: str, inference_id: str, timeout: float = 60) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        status = api.get(f"/endpoints/{endpoint}/async-invocations/{inference_id}").json()
        if status["status"] in DONE:
            return status
        time.sleep(0.1)
    raise AssertionError(f"{inference_id} not done after {timeout}s: {status}")


def wait_status(api: httpx.Client, endpoint: str, inference_id: str, wanted: str, timeout: float = 60) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        status = api.get(f"/endpoints/{endpoint}/async-invocations/{inference_id}").json()
        if status["status"] == wanted:
            return status
        assert status["status"] not in DONE - {wanted}, status
        time.sleep(0.05)
    raise AssertionError(f"{inference_id} never {wanted}: {status}")


# --- the session server ----------------------------------------------------------------------


def test_inline_payload_moves_queued_running_succeeded(
    api: httpx.Client, endpoints: dict[str, str], webhooks: Webhooks
) -> None:
    ep = endpoints["sleep"]
    response = api.post(f"/endpoints/{ep}/async-invocations", json={"inputs": "hi", "sleep": 1.5})
    assert response.status_code == 202, response.text
    accepted = response.json()
    assert accepted["status"] == "queued"
    inference_id = accepted["inferenceId"]
    assert response.headers["X-Amzn-SageMaker-Inference-Id"] == inference_id
    assert response.headers["X-Amzn-SageMaker-OutputLocation"] == accepted["outputLocation"]
    assert response.headers["X-Amzn-SageMaker-FailureLocation"] == accepted["failureLocation"]
    assert accepted["outputLocation"].endswith(f"/storage/async/{ep}/{inference_id}.out")

    running = wait_status(api, ep, inference_id, "running")
    assert running["attempts"] == 1 and running["startedAt"]
    done = wait_done(api, ep, inference_id)
    assert done["status"] == "succeeded" and done["error"] is None and done["finishedAt"]
    assert json.loads(Path(done["outputLocation"]).read_text()) == {"echo": "hi", "slept": 1.5}
    assert not list((Path(done["outputLocation"]).parent / "payloads").glob(f"{inference_id}.*"))  # payload cleaned

    call = webhooks.wait_for(inference_id)
    assert call == {"path": "/ok", "inferenceId": inference_id, "endpoint": ep, "status": "succeeded",
                    "outputLocation": done["outputLocation"]}  # fmt: skip


def test_by_reference_inputs_header_and_field(api: httpx.Client, server: RunningServer, endpoints: dict[str, str]) -> None:
    ep = endpoints["tc"]
    inputs = server.home / "storage" / "inputs"
    inputs.mkdir(parents=True, exist_ok=True)
    (inputs / "one.json").write_text(json.dumps({"inputs": "I love this"}))
    expected = api.post(f"/endpoints/{ep}", json={"inputs": "I love this"}).json()

    by_header = api.post(
        f"/endpoints/{ep}/async-invocations", headers={"X-Amzn-SageMaker-InputLocation": str(inputs / "one.json")}
    )
    by_field = api.post(f"/endpoints/{ep}/async-invocations", json={"input_location": f"file://{inputs}/one.json"})
    for response in (by_header, by_field):
        assert response.status_code == 202, response.text
        done = wait_done(api, ep, response.json()["inferenceId"])
        assert done["status"] == "succeeded", done
        assert done["inputLocation"] == str(inputs.resolve() / "one.json")
        assert json.loads(Path(done["outputLocation"]).read_text()) == expected
    assert (inputs / "one.json").exists()  # the user's own input is left alone


def test_client_chosen_id_is_idempotent(api: httpx.Client, endpoints: dict[str, str]) -> None:
    ep = endpoints["tc"]
    headers = {"X-Amzn-SageMaker-Inference-Id": "my-id-1"}
    first = api.post(f"/endpoints/{ep}/async-invocations", json={"inputs": "a"}, headers=headers)
    second = api.post(f"/endpoints/{ep}/async-invocations", json={"inputs": "b"}, headers=headers)
    assert first.status_code == second.status_code == 202
    assert first.json()["inferenceId"] == second.json()["inferenceId"] == "my-id-1"
    wait_done(api, ep, "my-id-1")
    listed = api.get(f"/endpoints/{ep}/async-invocations").json()["items"]
    assert [item["inferenceId"] for item in listed].count("my-id-1") == 1


@pytest.mark.parametrize(
    ("headers", "body", "status", "says"),
    [
        ({"X-Amzn-SageMaker-RequestTTLSeconds": "21601"}, {"inputs": "x"}, 400, "between 1 and 21600"),
        ({"X-Amzn-SageMaker-InvocationTimeoutSeconds": "3601"}, {"inputs": "x"}, 400, "between 1 and 3600"),
        ({"X-Amzn-SageMaker-InvocationTimeoutSeconds": "soon"}, {"inputs": "x"}, 400, "whole number"),
        ({"X-Amzn-SageMaker-Inference-Id": "../etc"}, {"inputs": "x"}, 400, "Inference-Id"),
        ({"X-Amzn-SageMaker-InputLocation": "/etc/passwd"}, None, 400, "outside the allowed storage roots"),
        ({}, {"input_location": "/nowhere/at/all.json"}, 400, "outside"),
        ({"X-Hubserve-Output-Location": "ftp://x/y"}, {"inputs": "x"}, 400, "unsupported location scheme"),
    ],
)
def test_bad_requests_say_what_to_fix(
    api: httpx.Client, endpoints: dict[str, str], headers: dict[str, str], body: Any, status: int, says: str
) -> None:
    response = api.post(f"/endpoints/{endpoints['tc']}/async-invocations", json=body, headers=headers)
    assert response.status_code == status, response.text
    assert says in response.json()["message"]  # SageMaker's shape, as boto3 reads it


def test_missing_input_unknown_endpoint_and_id(api: httpx.Client, server: RunningServer, endpoints: dict[str, str]) -> None:
    missing = server.home / "storage" / "inputs" / "missing.json"
    response = api.post(f"/endpoints/{endpoints['tc']}/async-invocations", headers={"X-Amzn-SageMaker-InputLocation": str(missing)})
    assert response.status_code == 400 and "does not exist" in response.json()["message"]
    response = api.post("/endpoints/no-such-endpoint/async-invocations", json={"inputs": "x"})
    assert response.status_code == 404 and response.headers["x-amzn-ErrorType"] == "EndpointNotFound"
    response = api.get(f"/endpoints/{endpoints['tc']}/async-invocations/nope")
    assert response.status_code == 404 and response.json()["error"]["type"] == "InferenceNotFound"


def test_timeout_then_ttl_expiry(api: httpx.Client, endpoints: dict[str, str], webhooks: Webhooks) -> None:
    ep = endpoints["sleep"]
    slow = api.post(
        f"/endpoints/{ep}/async-invocations", json={"inputs": "slow", "sleep": 3},
        headers={"X-Amzn-SageMaker-InvocationTimeoutSeconds": "2"},
    ).json()  # fmt: skip
    # One at a time on this endpoint: this one waits in the queue behind the slow one (2 s), past its TTL (1 s).
    short_lived = api.post(
        f"/endpoints/{ep}/async-invocations", json={"inputs": "late"}, headers={"X-Amzn-SageMaker-RequestTTLSeconds": "1"}
    ).json()

    timed_out = wait_done(api, ep, slow["inferenceId"])
    assert timed_out["status"] == "failed", timed_out
    assert timed_out["error"]["type"] == "InvocationTimeout" and "within 2 s" in timed_out["error"]["message"]
    failure = json.loads(Path(timed_out["failureLocation"]).read_text())
    assert failure["error"]["type"] == "InvocationTimeout" and failure["status"] == "failed"
    call = webhooks.wait_for(slow["inferenceId"])
    assert call["path"] == "/error" and call["failureLocation"] == timed_out["failureLocation"]

    expired = wait_done(api, ep, short_lived["inferenceId"])
    assert expired["status"] == "expired" and expired["attempts"] == 0, expired
    assert expired["error"]["type"] == "RequestExpired"
    assert json.loads(Path(expired["failureLocation"]).read_text())["status"] == "expired"


def test_queued_work_starts_a_scaled_to_zero_endpoint(api: httpx.Client, endpoints: dict[str, str]) -> None:
    ep = endpoints["tc"]
    api.post(f"/v1/endpoints/{ep}/scale-to-zero").raise_for_status()
    wait_for_state(api, ep, {"scaledToZero"})
    accepted = api.post(f"/endpoints/{ep}/async-invocations", json={"inputs": "wake up"}).json()
    assert wait_done(api, ep, accepted["inferenceId"])["status"] == "succeeded"
    description = api.get(f"/v1/endpoints/{ep}").json()
    assert description["state"] == "running" and description["replicas"]["ready"] >= 1
    assert description["asyncQueue"] == {"queued": 0, "running": 0}


def test_sdk_and_cli(server: RunningServer, endpoints: dict[str, str]) -> None:
    ep = endpoints["tc"]
    with Client(server.url, token=server.token) as client:
        accepted = client.invoke_async(ep, (part for part in (b'{"inputs": ', b'"streamed"}')), inference_id="sdk-1")
        done = client.wait_async_inference(ep, accepted["inferenceId"], timeout=60, interval=0.1)
        assert done["status"] == "succeeded" and client.get_async_inference(ep, "sdk-1")["status"] == "succeeded"
        assert any(item["inferenceId"] == "sdk-1" for item in client.list_async_inferences(ep, status="succeeded"))
        with pytest.raises(errors.InferenceNotFound):
            client.get_async_inference(ep, "never")
    cli = [sys.executable, "-m", "hubserve", "--url", server.url, "--token", server.token, "async"]
    run = subprocess.run([*cli, "invoke", ep, "--data", '{"inputs": "from the cli"}', "--wait", "--json"],
                         capture_output=True, text=True, timeout=120, check=False)  # fmt: skip
    assert run.returncode == 0, run.stderr
    result = json.loads(run.stdout)
    assert result["status"] == "succeeded" and Path(result["outputLocation"]).exists()
    shown = subprocess.run([*cli, "get", ep, result["inferenceId"]], capture_output=True, text=True, timeout=60, check=False)
    assert shown.returncode == 0 and "succeeded" in shown.stdout and result["inferenceId"] in shown.stdout


def _rss_kb(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise AssertionError("no VmRSS")


def test_200_mb_payload_is_streamed_not_held(api: httpx.Client, server: RunningServer, endpoints: dict[str, str]) -> None:
    ep = endpoints["tc"]
    pid = server.process.pid
    chunk = b"x" * (1 << 20)
    baseline = _rss_kb(pid)
    peak = [baseline]
    uploading = threading.Event()
    uploading.set()

    def sample() -> None:
        while uploading.is_set():
            peak[0] = max(peak[0], _rss_kb(pid))
            time.sleep(0.02)

    sampler = threading.Thread(target=sample)
    sampler.start()
    try:
        response = api.post(
            f"/endpoints/{ep}/async-invocations", content=(chunk for _ in range(200)),
            headers={"Content-Type": "application/json"},
        )  # fmt: skip
    finally:
        uploading.clear()
        sampler.join()
    assert response.status_code == 202, response.text
    grown_mb = (peak[0] - baseline) / 1024
    print(f"server RSS {baseline / 1024:.0f} MB, peak while taking 200 MB: +{grown_mb:.1f} MB")
    assert grown_mb < 50, f"the server grew by {grown_mb:.0f} MB while taking a 200 MB payload"
    # The replica read the file itself: it is not JSON, so the model's answer is a clear 400-type failure.
    done = wait_done(api, ep, response.json()["inferenceId"], timeout=120)
    assert done["status"] == "failed" and done["error"]["type"] == "ValidationError", done
    assert not list((server.home / "storage" / "async" / ep / "payloads").glob(f"{done['inferenceId']}.*"))


# --- servers of their own ----------------------------------------------------------------------


@pytest.fixture(scope="module")
def s3_backed(tmp_path_factory: pytest.TempPathFactory, s3_server: S3Server) -> Iterator[RunningServer]:
    """A server that talks to the moto S3 server, with a 1 MB async payload limit."""
    running = start_server(
        tmp_path_factory.mktemp("async-s3") / "home",
        extra_env={**s3_server.env, "HUBSERVE_ASYNC_MAX_PAYLOAD_BYTES": str(1 << 20)},
    )
    yield running
    stop_server(running)


def test_s3_input_and_output(s3_backed: RunningServer, s3_server: S3Server, tiny_models: dict[str, Path]) -> None:
    bucket, s3 = s3_server.bucket, s3_server.client()
    s3.put_object(Bucket=bucket, Key="async-in/one.json", Body=json.dumps({"inputs": "from s3"}).encode())
    spec = {"name": "s3-tc", "model": {"source": str(tiny_models["text-classification"])},
            "async_inference": {"output_location": f"s3://{bucket}/async-out"}}  # fmt: skip
    with httpx.Client(base_url=s3_backed.url, headers=s3_backed.headers(), timeout=60) as api:
        assert api.post("/v1/endpoints", json=spec).status_code == 201
        wait_for_state(api, "s3-tc", {"running"})
        expected = api.post("/endpoints/s3-tc", json={"inputs": "from s3"}).json()
        accepted = api.post(
            "/endpoints/s3-tc/async-invocations", headers={"X-Amzn-SageMaker-InputLocation": f"s3://{bucket}/async-in/one.json"}
        ).json()
        inference_id = accepted["inferenceId"]
        assert accepted["outputLocation"] == f"s3://{bucket}/async-out/{inference_id}.out"
        done = wait_done(api, "s3-tc", inference_id)
        assert done["status"] == "succeeded", done
        result = s3.get_object(Bucket=bucket, Key=f"async-out/{inference_id}.out")["Body"].read()
        assert json.loads(result) == expected
        # An inline payload with a per-request S3 prefix; a failure lands beside it.
        inline = api.post(
            "/endpoints/s3-tc/async-invocations", content=b"not json",
            headers={"Content-Type": "application/json", "X-Hubserve-Output-Location": f"s3://{bucket}/other"},
        ).json()  # fmt: skip
        failed = wait_done(api, "s3-tc", inline["inferenceId"])
        assert failed["status"] == "failed" and failed["failureLocation"].startswith(f"s3://{bucket}/other/")
        failure = s3.get_object(Bucket=bucket, Key=f"other/{inline['inferenceId']}.error.json")["Body"].read()
        assert json.loads(failure)["error"]["type"] == "ValidationError"
        missing = api.post("/endpoints/s3-tc/async-invocations", json={"input_location": f"s3://{bucket}/async-in/nope.json"})
        assert missing.status_code == 400 and "does not exist" in missing.json()["message"]


def test_payload_over_the_limit_is_413_and_removed(s3_backed: RunningServer, tiny_models: dict[str, Path]) -> None:
    spec = {"name": "limit-tc", "model": {"source": str(tiny_models["text-classification"])}}
    with httpx.Client(base_url=s3_backed.url, headers=s3_backed.headers(), timeout=60) as api:
        assert api.post("/v1/endpoints", json=spec).status_code == 201
        chunk = b"y" * (256 * 1024)
        response = api.post("/endpoints/limit-tc/async-invocations", content=(chunk for _ in range(8)))  # 2 MB, chunked
        assert response.status_code == 413, response.text
        assert "HUBSERVE_ASYNC_MAX_PAYLOAD_BYTES" in response.json()["message"]
        declared = api.post("/endpoints/limit-tc/async-invocations", content=chunk * 8)  # Content-Length says 2 MB
        assert declared.status_code == 413
    # The partial file goes when its upload is cut: the outer body limit may answer 413 a moment before the
    # route's stream sees the end and removes it, so look for a few seconds.
    payloads = s3_backed.home / "storage" / "async" / "limit-tc" / "payloads"
    deadline = time.monotonic() + 10
    while payloads.exists() and list(payloads.iterdir()) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not payloads.exists() or not list(payloads.iterdir())


def test_inference_survives_a_killed_server(tmp_path: Path, sleepy_model: Path) -> None:
    home = tmp_path / "home"
    first = start_server(home)
    try:
        with httpx.Client(base_url=first.url, headers=first.headers(), timeout=60) as api:
            assert api.post("/v1/endpoints", json=sleepy_spec("survivor", sleepy_model)).status_code == 201
            wait_for_state(api, "survivor", {"running"})
            accepted = api.post("/endpoints/survivor/async-invocations", json={"inputs": "again", "sleep": 2}).json()
            wait_status(api, "survivor", accepted["inferenceId"], "running")
    finally:
        first.process.send_signal(signal.SIGKILL)
        first.process.wait()
    second = start_server(home)
    try:
        with httpx.Client(base_url=second.url, headers=second.headers(), timeout=60) as api:
            done = wait_done(api, "survivor", accepted["inferenceId"], timeout=90)
            assert done["status"] == "succeeded" and done["attempts"] == 2, done
            assert json.loads(Path(done["outputLocation"]).read_text()) == {"echo": "again", "slept": 2}
    finally:
        stop_server(second)
