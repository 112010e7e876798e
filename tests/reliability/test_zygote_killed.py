"""The zygote SIGKILLed: replicas it forked earlier keep serving (they watch the server, not the zygote);
the next cold start starts a new zygote (or, past its limit, a fresh process), succeeds, and says so in
the endpoint's events; the one after forks from the new zygote as fast as before. The cold start with
the zygote killed and a normal one are printed (for docs/reliability.md)."""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path

import httpx

from tests.integration.conftest import RunningServer, wait_for_state

NAME = "zygote-killed"


def _zygote_of(server: RunningServer) -> int | None:
    """The pid of the server's zygote (its child running hubserve.worker.zygote, not the light one), if alive."""
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as stat:
                state, parent = stat.read().rsplit(")", 1)[1].split()[:2]
            with open(f"/proc/{entry}/cmdline", "rb") as cmdline:
                argv = cmdline.read().split(b"\0")
        except OSError:
            continue
        ours = int(parent) == server.process.pid and b"hubserve.worker.zygote" in argv and b"--light" not in argv
        if ours and state not in ("Z", "X"):
            return int(entry)
    return None


def _cold_start_ms(api: httpx.Client) -> float:
    """Scale the endpoint to zero, then time one invocation, which has to start a replica."""
    assert api.post(f"/v1/endpoints/{NAME}/scale-to-zero").status_code == 200
    wait_for_state(api, NAME, {"scaledToZero"}, timeout=30)
    deadline = time.monotonic() + 30
    while api.get(f"/v1/endpoints/{NAME}").json()["replicas"]["ready"]:
        assert time.monotonic() < deadline
        time.sleep(0.05)
    started = time.perf_counter()
    response = api.post(f"/endpoints/{NAME}", json={"inputs": "I like this"}, timeout=120)
    took_ms = (time.perf_counter() - started) * 1000
    assert response.status_code == 200, response.text
    assert response.headers["x-cold-start"] == "true"
    return took_ms


def _events(api: httpx.Client) -> list[str]:
    lines = api.get(f"/v1/endpoints/{NAME}/logs", params={"source": "hubserve"}).json()["lines"]
    return [str(line) for line in lines]


def test_a_killed_zygote_is_started_again_by_the_next_cold_start(
    server: RunningServer, api: httpx.Client, tiny_models: dict[str, Path]
) -> None:
    spec = {"name": NAME, "model": {"source": str(tiny_models["text-classification"])},
            "compute": {"type": "serverless"}}  # fmt: skip
    assert api.post("/v1/endpoints", json=spec).status_code == 201
    wait_for_state(api, NAME, {"running"}, timeout=60)
    normal_ms = _cold_start_ms(api)

    bystander = {**spec, "name": "bystander", "compute": {"type": "dedicated", "min_replicas": 1, "max_replicas": 1}}
    assert api.post("/v1/endpoints", json=bystander).status_code == 201
    wait_for_state(api, "bystander", {"running"}, timeout=60)
    zygote = _zygote_of(server)
    assert zygote is not None, "the server runs a zygote"
    os.kill(zygote, signal.SIGKILL)
    time.sleep(1.5)  # three of the replicas' watch intervals: a replica that followed its parent would be gone
    for _ in range(5):
        kept = api.post("/endpoints/bystander", json={"inputs": "still here"})
        assert kept.status_code == 200 and kept.headers["x-cold-start"] == "false", kept.text
    assert api.get("/v1/endpoints/bystander").json()["cold_starts"] == 0
    killed_ms = _cold_start_ms(api)
    again = _zygote_of(server)
    assert again is not None and again != zygote, "the cold start started a new zygote"
    said = f"the zygote (pid {zygote}) had exited: started a new one (pid {again})"
    assert any(said in line for line in _events(api)), _events(api)

    after_ms = _cold_start_ms(api)  # forked from the new zygote
    print(
        f"\ncold start: normal {normal_ms:.0f} ms; with the zygote killed {killed_ms:.0f} ms; "
        f"the next one {after_ms:.0f} ms"
    )
    assert after_ms < killed_ms
    assert api.get(f"/v1/endpoints/{NAME}").json()["state"] == "running"
    api.delete("/v1/endpoints/bystander")
