"""Logs through the real server: a replica's own print, hubserve's events and access lines, in time order."""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from hubserve.logs import read_logs
from hubserve.logs.stamp import StampedStream, _Rotator
from tests.integration.conftest import RunningServer, wait_for_state

NAME = "chatty"
MARKER = "hello-from-the-handler"

HANDLER = f'''
class EndpointHandler:
    def __init__(self, path=""):
        print("{MARKER} loaded", flush=True)

    def __call__(self, data):
        print("{MARKER} called with", data.get("inputs"), flush=True)
        return {{"ok": True}}
'''


@pytest.fixture(scope="module")
def chatty(api: httpx.Client, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    folder = tmp_path_factory.mktemp("chatty-model")
    (folder / "handler.py").write_text(HANDLER)
    spec = {"name": NAME, "model": {"source": str(folder), "task": "text-classification"}, "custom_code": True,
            "compute": {"type": "serverless", "memory_mb": 2048, "max_concurrency": 2}}  # fmt: skip
    created = api.post("/v1/endpoints", json=spec)
    assert created.status_code == 201, created.text
    wait_for_state(api, NAME, {"running"})
    for word in ("one", "two"):
        assert api.post(f"/endpoints/{NAME}", json={"inputs": word}).status_code == 200
    assert api.post(f"/endpoints/{NAME}", content=b"{broken").status_code == 400
    yield NAME
    api.delete(f"/v1/endpoints/{NAME}")


def test_logs_hold_the_replicas_print_events_and_access_lines(api: httpx.Client, chatty: str) -> None:
    body = api.get(f"/v1/endpoints/{NAME}/logs", params={"tail": 500}).json()
    lines = body["lines"]
    times = [line["time"] for line in lines]
    assert times == sorted(times) and body["next_since"] == times[-1]
    replica_lines = [line for line in lines if line["source"] != "hubserve"]
    assert any(MARKER in line["message"] and "called with two" in line["message"] for line in replica_lines)
    assert {line["stream"] for line in replica_lines} <= {"stdout", "stderr", "raw"}
    events = [line["message"] for line in lines if line["stream"] == "event"]
    assert any("model setup took" in e for e in events) and any(e.startswith("state running") for e in events)
    access = [line["message"] for line in lines if line["stream"] == "access"]
    assert len(access) == 3
    assert access[0].startswith(f'"POST /endpoints/{NAME}" 200 model_ms=') and "overhead_ms=" in access[0]
    assert access[2].startswith(f'"POST /endpoints/{NAME}" 400')


def test_since_tail_source_and_errors(api: httpx.Client, chatty: str) -> None:
    everything = api.get(f"/v1/endpoints/{NAME}/logs", params={"tail": 500}).json()["lines"]
    last_two = api.get(f"/v1/endpoints/{NAME}/logs", params={"tail": 2}).json()["lines"]
    assert last_two == everything[-2:]
    later = api.get(f"/v1/endpoints/{NAME}/logs", params={"since": everything[-1]["time"]}).json()["lines"]
    assert later and all(line["time"] >= everything[-1]["time"] for line in later)
    recent = api.get(f"/v1/endpoints/{NAME}/logs", params={"since": "10m"}).json()["lines"]
    assert recent[: len(everything)] == everything  # lines written since the first read may follow
    only = api.get(f"/v1/endpoints/{NAME}/logs", params={"source": "hubserve"}).json()["lines"]
    assert only and {line["source"] for line in only} == {"hubserve"}
    assert api.get(f"/v1/endpoints/{NAME}/logs", params={"since": "yesterday"}).status_code == 400
    assert api.get(f"/v1/endpoints/{NAME}/logs", params={"tail": 0}).status_code == 400
    assert api.get("/v1/endpoints/no-such-endpoint/logs").status_code == 404


def test_cli_prints_and_follows(server: RunningServer, api: httpx.Client, chatty: str) -> None:
    base = [sys.executable, "-m", "hubserve", "--url", server.url, "--token", server.token, "endpoint", "logs", NAME]
    printed = subprocess.run([*base, "--tail", "50"], capture_output=True, text=True, timeout=60)
    assert printed.returncode == 0, printed.stderr
    assert MARKER in printed.stdout and "access" in printed.stdout
    follower = subprocess.Popen([*base, "--follow", "--since", "1s"], stdout=subprocess.PIPE, text=True)
    try:
        time.sleep(3.0)  # the follower is polling
        assert api.post(f"/endpoints/{NAME}", json={"inputs": "followed"}).status_code == 200
        time.sleep(4.0)  # a few polls: the line must come once, not once per poll
    finally:
        follower.terminate()
    out, _ = follower.communicate(timeout=20)
    assert out.count("called with followed") == 1


def test_stamped_stream_rotates_and_keeps_every_line(tmp_path: Path) -> None:
    import os

    log = tmp_path / "r-1.log"
    fd = os.open(log, os.O_WRONLY | os.O_CREAT | os.O_APPEND)
    saved = os.dup(1)
    os.dup2(fd, 1)
    try:
        stream = StampedStream(1, "stdout", _Rotator(str(log), max_bytes=2000))
        for i in range(100):
            stream.write(f"line {i}\n")
        stream.write("partial")
        stream.close()
    finally:
        os.dup2(saved, 1)
        os.close(saved)
        os.close(fd)
    assert (tmp_path / "r-1.log.1").exists() and log.stat().st_size <= 2100
    lines = read_logs(tmp_path, tail=1000)
    messages = [line.message for line in lines]
    assert messages[-1] == "partial"
    assert messages[-2] == "line 99"
    assert all(line.source == "r-1" for line in lines)
