"""Through the real server: a model without trained weights for the task's head fails with a reason, not noise.

A sentence-transformers folder (a bare BERT encoder) deployed as question-answering would answer
from a ``qa_outputs`` layer transformers initialised at random; the deployment fails instead,
naming the missing weights and the tasks the weights do serve. ``model.allow_missing_weights``
is the deliberate way to run it anyway, and describe's notes say so.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.integration.conftest import wait_for_state

REFUSED, ALLOWED, OWN = "mw-refused", "mw-allowed", "mw-own-task"


@pytest.fixture(scope="module")
def encoder(api: httpx.Client, tiny_models: dict[str, Path]) -> Iterator[Path]:
    yield tiny_models["sentence-transformers"]
    for name in (REFUSED, ALLOWED, OWN):
        api.delete(f"/v1/endpoints/{name}")


def _create(api: httpx.Client, name: str, folder: Path, task: str, **model: object) -> None:
    spec = {"name": name, "model": {"source": str(folder), "task": task, **model}}
    response = api.post("/v1/endpoints", json=spec)
    assert response.status_code == 201, response.text


def test_a_missing_head_fails_the_deployment_naming_the_weights_and_the_tasks(api: httpx.Client, encoder: Path) -> None:
    _create(api, REFUSED, encoder, "question-answering")
    described = wait_for_state(api, REFUSED, {"running", "failed"})
    assert described["state"] == "failed", described
    reason = described["reason"]
    assert "qa_outputs.bias, qa_outputs.weight are missing" in reason, reason
    assert "sentence-embeddings, sentence-similarity, feature-extraction" in reason, reason
    assert "model.allow_missing_weights: true" in reason and not reason.startswith("loading the model failed"), reason
    answer = api.post(f"/endpoints/{REFUSED}", json={"inputs": {"question": "Who?", "context": "Ann."}})
    assert answer.status_code >= 400  # nothing answers from random weights


def test_allow_missing_weights_runs_and_describe_says_so(api: httpx.Client, encoder: Path) -> None:
    _create(api, ALLOWED, encoder, "question-answering", allow_missing_weights=True)
    described = wait_for_state(api, ALLOWED, {"running", "failed"})
    assert described["state"] == "running", described
    assert described["model"]["allow_missing_weights"] is True
    assert any("allow_missing_weights is on" in note for note in described["notes"]), described["notes"]
    answer = api.post(f"/endpoints/{ALLOWED}", json={"inputs": {"question": "Who?", "context": "Ann lives here."}})
    assert answer.status_code == 200, answer.text
    logs = api.get(f"/v1/endpoints/{ALLOWED}/logs", params={"tail": 500}).json()["lines"]
    assert any("qa_outputs.bias, qa_outputs.weight not in the checkpoint" in line["message"] for line in logs)


def test_the_same_folder_deploys_for_a_task_it_has_weights_for(api: httpx.Client, encoder: Path) -> None:
    _create(api, OWN, encoder, "sentence-similarity")
    described = wait_for_state(api, OWN, {"running", "failed"})
    assert described["state"] == "running", described
    assert not any("allow_missing_weights" in note for note in described["notes"])
