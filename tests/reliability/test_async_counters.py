"""Describe's async figures tell the truth: 30 async inferences on a real server, read the whole time.

Each pass reads describe, then every unfinished inference's status. A status is final once it is
succeeded, failed or expired, so two bounds hold for each describe: its ``queued + running`` is
at most the inferences not yet seen finished *before* it was read (an inference seen succeeded is
never counted again: no stale ``queued: 1``), and at least those still unfinished *after* it was
read (nothing is dropped from the count while it waits or runs). The gateway's ``in_flight`` never
exceeds the inferences running, and once every inference is done every figure is zero.
"""

from __future__ import annotations

import shutil
import time
from pathlib import Path

import httpx
import pytest

from tests.integration.conftest import wait_for_state
from tests.integration.test_async_inference import DONE, SLEEPY_HANDLER

COUNT = 30


@pytest.fixture(scope="module")
def sleepy(api: httpx.Client, tiny_models: dict[str, Path], tmp_path_factory: pytest.TempPathFactory) -> str:
    folder = tmp_path_factory.mktemp("counters-sleepy") / "model"
    shutil.copytree(tiny_models["text-classification"], folder)
    (folder / "handler.py").write_text(SLEEPY_HANDLER)
    spec = {"name": "counted", "model": {"source": str(folder)}, "custom_code": True,
            "compute": {"type": "serverless", "max_concurrency": 2},
            "async_inference": {"max_concurrent_invocations_per_replica": 2}}  # fmt: skip
    assert api.post("/v1/endpoints", json=spec).status_code == 201
    wait_for_state(api, "counted", {"running"})
    return "counted"


def test_counts_never_hold_a_finished_inference(api: httpx.Client, sleepy: str) -> None:
    ids = []
    for index in range(COUNT):  # short and varied, so finishes and claims interleave with the reads
        response = api.post(
            f"/endpoints/{sleepy}/async-invocations", json={"inputs": index, "sleep": 0.05 * (index % 4)}
        )
        assert response.status_code == 202, response.text
        ids.append(response.json()["inferenceId"])

    finished: dict[str, str] = {}
    reads = 0
    deadline = time.monotonic() + 120
    while len(finished) < COUNT:
        assert time.monotonic() < deadline, f"only {len(finished)} of {COUNT} finished"
        unfinished_before = COUNT - len(finished)
        described = api.get(f"/v1/endpoints/{sleepy}").json()
        queue, requests = described["asyncQueue"], described["requests"]
        reads += 1
        for inference_id in ids:
            if inference_id in finished:
                continue
            status = api.get(f"/endpoints/{sleepy}/async-invocations/{inference_id}").json()["status"]
            if status in DONE:
                finished[inference_id] = status
        unfinished_after = COUNT - len(finished)
        counted = queue["queued"] + queue["running"]
        assert counted <= unfinished_before, (
            f"describe counts {queue} but only {unfinished_before} inferences were unfinished when it was read"
        )
        assert counted >= unfinished_after, f"describe counts {queue} but {unfinished_after} are still unfinished"
        assert requests["in_flight"] <= queue["running"], described

    assert set(finished.values()) == {"succeeded"}, finished
    described = api.get(f"/v1/endpoints/{sleepy}").json()
    assert described["asyncQueue"] == {"queued": 0, "running": 0}, described["asyncQueue"]
    assert described["requests"] == {"in_flight": 0, "held": 0}, described["requests"]
    print(f"{COUNT} inferences succeeded; describe read {reads} times, every read within bounds")


def test_describe_right_after_each_success(api: httpx.Client, sleepy: str) -> None:
    """One at a time: as soon as the status says succeeded, describe counts nothing."""
    for index in range(COUNT):
        accepted = api.post(f"/endpoints/{sleepy}/async-invocations", json={"inputs": index, "sleep": 0.02}).json()
        deadline = time.monotonic() + 30
        while (status := api.get(f"/endpoints/{sleepy}/async-invocations/{accepted['inferenceId']}").json())[
            "status"
        ] not in DONE:
            assert time.monotonic() < deadline, status
        assert status["status"] == "succeeded", status
        described = api.get(f"/v1/endpoints/{sleepy}").json()
        assert described["asyncQueue"] == {"queued": 0, "running": 0}, (index, described["asyncQueue"])
        assert described["requests"]["in_flight"] == 0, (index, described["requests"])
