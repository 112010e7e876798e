"""Through the real server: a replica's long start steps show as the endpoint's reason and in its events.

An ONNX int8 endpoint whose model has never been exported exports, optimizes, quantizes and then
loads; each step is an event (``state initializing: exporting to ONNX (step 1 of 4)``), in order,
and describe shows the current one as the reason while the state stays ``initializing``.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import tiny_models

from tests.integration.conftest import wait_for_state

NAME = "phases-int8"
STEPS = [
    "exporting to ONNX (step 1 of 4)",
    "optimizing the ONNX graph (step 2 of 4)",
    "quantizing to int8 (step 3 of 4)",
    "loading the model (step 4 of 4)",
]


@pytest.fixture(scope="module")
def fresh_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A classifier no other test exported: its own labels give it its own digest in the export cache."""
    folder = tiny_models.build_text_classification(tmp_path_factory.mktemp("phases") / "model")
    config = json.loads((folder / "config.json").read_text())
    config["id2label"], config["label2id"] = {"0": "SAD", "1": "GLAD"}, {"SAD": 0, "GLAD": 1}
    (folder / "config.json").write_text(json.dumps(config))
    return folder


@pytest.fixture(scope="module")
def reasons_seen(api: httpx.Client, fresh_model: Path) -> Iterator[list[str]]:
    """Create the endpoint and record every reason describe showed until it ran."""
    spec = {"name": NAME, "model": {"source": str(fresh_model), "task": "text-classification", "runtime": "onnx-int8"}}
    response = api.post("/v1/endpoints", json=spec)
    assert response.status_code == 201, response.text
    seen: list[str] = []
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline:
        described = api.get(f"/v1/endpoints/{NAME}").json()
        if described["reason"] and described["reason"] not in seen:
            assert described["state"] == "initializing", described
            seen.append(described["reason"])
        if described["state"] in ("running", "failed"):
            break
        time.sleep(0.05)
    assert wait_for_state(api, NAME, {"running"}, timeout=5)["reason"] is None
    yield seen
    api.delete(f"/v1/endpoints/{NAME}")


def test_events_list_each_step_in_order(api: httpx.Client, reasons_seen: list[str]) -> None:
    lines = api.get(f"/v1/endpoints/{NAME}/logs", params={"tail": 500, "source": "hubserve"}).json()["lines"]
    events = [line["message"] for line in lines if line["stream"] == "event"]
    steps = [event.removeprefix("state initializing: ") for event in events if "(step " in event]
    assert steps == STEPS, events
    assert events.index(f"state initializing: {STEPS[-1]}") < next(
        i for i, event in enumerate(events) if event.startswith("state running")
    )


def test_describe_showed_the_steps_as_the_reason(reasons_seen: list[str]) -> None:
    assert reasons_seen, "describe never showed a step"
    assert all(reason in STEPS for reason in reasons_seen), reasons_seen
    assert "exporting to ONNX (step 1 of 4)" in reasons_seen  # the export takes seconds: polling sees it
    assert reasons_seen == sorted(reasons_seen, key=STEPS.index)


def test_the_replica_log_has_the_steps_too(api: httpx.Client, reasons_seen: list[str]) -> None:
    lines = api.get(f"/v1/endpoints/{NAME}/logs", params={"tail": 500}).json()["lines"]
    replica = [line["message"] for line in lines if line["source"] != "hubserve"]
    assert [m.removeprefix("starting: ") for m in replica if m.startswith("starting: ")] == STEPS
