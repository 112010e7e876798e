"""scikit-learn models in the Hub's layout, deployed and invoked through a real server (and the real boto3).

The task and framework are inferred from the folder; answers match the model called in-process;
column errors are 400s naming the column; a pickle is refused unless the endpoint opts in; a skops
file that needs untrusted types fails with their list until the spec trusts them; CSV rows work on
the SageMaker route; the replica never imports torch; many tabular models sit behind one
multi-model endpoint.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import httpx
import pytest
import tabular_models as builders

from hubserve.models import tabular
from tests.integration.conftest import RunningServer, start_server, stop_server, wait_for_state

READY = {"running", "scaledToZero"}
# skops trusts no tree type by default: forests and boosting need it named, as a user's spec would.
TREES = {"trusted_types": ["sklearn.tree._tree.Tree"]}


@pytest.fixture(scope="module")
def data_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("tabular-data")


@pytest.fixture(scope="module")
def tab_server(tmp_path_factory: pytest.TempPathFactory, data_root: Path) -> Iterator[RunningServer]:
    env = {"HUBSERVE_STORAGE_ROOTS": json.dumps([str(data_root)])}  # batch jobs' input and output
    running = start_server(tmp_path_factory.mktemp("tabular") / "home", extra_env=env)
    yield running
    stop_server(running)


@pytest.fixture(scope="module")
def api(tab_server: RunningServer) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=tab_server.url, headers=tab_server.headers(), timeout=120) as client:
        yield client


@pytest.fixture(scope="module")
def models(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("tabular-models")
    return {
        "logistic": builders.build_scaled_logistic(root / "logistic"),
        "forest": builders.build_random_forest(root / "forest", regression=True),
        "text": builders.build_text_pipeline(root / "text"),
        "pickled": builders.build_pickled(root / "pickled"),
        "untrusted": builders.build_untrusted(root / "untrusted"),
    }


def example(folder: Path) -> dict[str, list[Any]]:
    return dict(json.loads((folder / "config.json").read_text())["sklearn"]["example_input"])


def deploy(api: httpx.Client, name: str, folder: Path, **spec: Any) -> dict[str, Any]:
    created = api.post("/v1/endpoints", json={"name": name, "model": {"source": str(folder)}, **spec})
    assert created.status_code in (200, 201, 202), created.text
    return wait_for_state(api, name, READY | {"failed"}, timeout=120)


def in_process(folder: Path, body: Any, **trust: Any) -> Any:
    predictor, _ = tabular.load_tabular(folder, tabular.sklearn_task(folder), **trust)
    return json.loads(json.dumps(predictor(body)))


def test_a_classifier_is_inferred_served_and_checked(api: httpx.Client, models: dict[str, Path]) -> None:
    described = deploy(api, "tab-logistic", models["logistic"])
    assert described["state"] in READY, described
    assert described["model"]["task"] == "tabular-classification" and described["model"]["framework"] == "sklearn"
    rows = example(models["logistic"])
    body = {"inputs": {"data": rows}}
    answer = api.post("/endpoints/tab-logistic", json=body)
    assert answer.status_code == 200, answer.text
    assert answer.json() == in_process(models["logistic"], body)
    assert len(answer.json()) == len(next(iter(rows.values())))

    with_probabilities = api.post(
        "/endpoints/tab-logistic", json={**body, "parameters": {"probabilities": True}}
    ).json()
    assert all(abs(sum(item["probabilities"].values()) - 1) < 1e-6 for item in with_probabilities)

    missing_column = next(iter(rows))
    missing = api.post(
        "/endpoints/tab-logistic", json={"inputs": {"data": {k: v for k, v in rows.items() if k != missing_column}}}
    )
    assert missing.status_code == 400 and missing_column in missing.text
    extra = api.post(
        "/endpoints/tab-logistic", json={"inputs": {"data": {**rows, "surprise": [1] * len(rows[missing_column])}}}
    )
    assert extra.status_code == 400 and "surprise" in extra.text


def test_csv_rows_on_the_sagemaker_route_with_boto3(
    tab_server: RunningServer, api: httpx.Client, models: dict[str, Path]
) -> None:
    described = deploy(api, "tab-forest", models["forest"], model={"source": str(models["forest"]), **TREES})
    assert described["state"] in READY, described
    rows = example(models["forest"])
    columns = list(rows)
    csv_body = (
        "\n".join(",".join(str(rows[column][i]) for column in columns) for i in range(len(rows[columns[0]]))) + "\n"
    )
    runtime = boto3.client("sagemaker-runtime", endpoint_url=tab_server.url, aws_access_key_id="hubserve",
                           aws_secret_access_key=tab_server.token, region_name="us-east-1")  # fmt: skip
    answer = runtime.invoke_endpoint(
        EndpointName="tab-forest", Body=csv_body, ContentType="text/csv", Accept="application/json"
    )
    predictions = json.loads(answer["Body"].read())
    assert predictions == pytest.approx(in_process(models["forest"], {"inputs": {"data": rows}}, **TREES))
    short = api.post("/endpoints/tab-forest/invocations", content="1,2\n", headers={"Content-Type": "text/csv"})
    assert short.status_code == 400 and str(len(columns)) in short.text


def test_a_batch_transform_over_csv_files(api: httpx.Client, models: dict[str, Path], data_root: Path) -> None:
    deploy(api, "tab-batch", models["logistic"])
    rows = example(models["logistic"])
    columns = list(rows)
    count = len(rows[columns[0]])
    lines = [",".join(str(rows[column][i % count]) for column in columns) for i in range(40)]
    (data_root / "rows").mkdir()
    (data_root / "rows" / "part-1.csv").write_text("\n".join(lines[:25]) + "\n")
    (data_root / "rows" / "part-2.csv").write_text("\n".join(lines[25:]) + "\n")
    created = api.post("/v1/batch-jobs", json={"endpoint": "tab-batch", "input": str(data_root / "rows"),
                                               "output": str(data_root / "rows-out"), "content_type": "text/csv"})  # fmt: skip
    assert created.status_code == 201, created.text
    job = wait_job(api, created.json()["id"])
    assert job["status"] == "completed" and job["records"]["succeeded"] == 40, job
    answers = [json.loads(line) for name in ("part-1.csv.out", "part-2.csv.out")
               for line in (data_root / "rows-out" / name).read_text().splitlines()]  # fmt: skip
    expected = in_process(models["logistic"], {"inputs": {"data": rows}})
    assert answers == [[expected[i % count]] for i in range(40)]


def test_registered_and_invoked_asynchronously(api: httpx.Client, models: dict[str, Path]) -> None:
    registered = api.post("/v1/models/churn/versions", json={"source": str(models["logistic"])})
    assert registered.status_code in (200, 201), registered.text
    assert registered.json()["task"] == "tabular-classification"
    described = deploy(api, "tab-registry", models["logistic"], model={"source": "registry://churn/1"})
    assert described["state"] in READY, described
    body = {"inputs": {"data": example(models["logistic"])}}
    accepted = api.post("/endpoints/tab-registry/async-invocations", json=body)
    assert accepted.status_code == 202, accepted.text
    inference_id = accepted.json()["inferenceId"]
    deadline = time.monotonic() + 60
    status: dict[str, Any] = {}
    while time.monotonic() < deadline:
        status = api.get(f"/endpoints/tab-registry/async-invocations/{inference_id}").json()
        if status["status"] in ("succeeded", "failed"):
            break
        time.sleep(0.2)
    assert status["status"] == "succeeded", status
    assert json.loads(Path(status["outputLocation"]).read_text()) == in_process(models["logistic"], body)


def wait_job(api: httpx.Client, job_id: str, timeout: float = 120) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    job: dict[str, Any] = {}
    while time.monotonic() < deadline:
        job = api.get(f"/v1/batch-jobs/{job_id}").json()
        if job["status"] in ("completed", "failed", "stopped"):
            return job
        time.sleep(0.2)
    raise AssertionError(f"{job_id} did not finish: {job}")


def test_the_replica_never_imports_torch(tab_server: RunningServer, api: httpx.Client, models: dict[str, Path]) -> None:
    deploy(api, "tab-notorch", models["logistic"])
    assert api.post("/endpoints/tab-notorch", json={"inputs": {"data": example(models["logistic"])}}).status_code == 200
    replicas = [pid for pid in _worker_pids() if '"endpoint":"tab-notorch"' in _cmdline(pid)]
    assert replicas, "no replica process found for tab-notorch"
    for pid in replicas:
        maps = Path(f"/proc/{pid}/maps").read_text()
        assert "/sklearn/" in maps, "the replica has not loaded scikit-learn"
        assert "libtorch" not in maps, f"replica {pid} loaded torch"
    # forked from the light zygote, which imported scikit-learn and skops (and could not import torch)
    assert "ready in" in (tab_server.home / "logs" / "zygote-light.log").read_text()


def test_a_text_pipeline_answers_as_transformers_does(api: httpx.Client, models: dict[str, Path]) -> None:
    described = deploy(api, "tab-text", models["text"])
    assert described["model"]["task"] == "text-classification" and described["model"]["framework"] == "sklearn"
    answer = api.post("/endpoints/tab-text", json={"inputs": ["a great film", "a dull film"]}).json()
    assert [set(item) for item in answer] == [{"label", "score"}] * 2
    assert answer == in_process(models["text"], {"inputs": ["a great film", "a dull film"]})


def test_pickle_needs_the_endpoint_to_opt_in(api: httpx.Client, models: dict[str, Path]) -> None:
    refused = api.post("/v1/endpoints", json={"name": "tab-pickle", "model": {"source": str(models["pickled"])}})
    assert refused.status_code == 422 and "allow_pickle" in refused.text
    described = deploy(api, "tab-pickle", models["pickled"], allow_pickle=True)
    assert described["state"] in READY, described
    assert any("allow_pickle" in note for note in described["notes"])
    answer = api.post("/endpoints/tab-pickle", json={"inputs": {"data": example(models["pickled"])}})
    assert answer.status_code == 200, answer.text


def test_untrusted_types_are_refused_until_the_spec_trusts_them(api: httpx.Client, models: dict[str, Path]) -> None:
    described = deploy(api, "tab-untrusted", models["untrusted"])
    assert described["state"] == "failed" and "trusted_types" in (described["reason"] or "")
    needed = tabular_untrusted(models["untrusted"])
    assert all(name in described["reason"] for name in needed)
    spec = {"name": "tab-untrusted", "model": {"source": str(models["untrusted"]), "trusted_types": needed}}
    assert api.put("/v1/endpoints/tab-untrusted", json=spec).status_code == 200
    assert wait_for_state(api, "tab-untrusted", READY | {"failed", "updateFailed"}, timeout=120)["state"] in READY
    answer = api.post("/endpoints/tab-untrusted", json={"inputs": {"data": example(models["untrusted"])}})
    assert answer.status_code == 200, answer.text


def test_many_tabular_models_behind_one_multi_model_endpoint(api: httpx.Client, tmp_path: Path) -> None:
    root = tmp_path / "tabular-fleet"
    for index in range(3):
        builders.build_random_forest(root / f"forest-{index}")
    described = deploy(api, "tab-fleet", root, model={"source": str(root), "multi_model": True, **TREES})
    assert described["state"] in READY, described
    for index in range(3):
        folder = root / f"forest-{index}"
        body = {"inputs": {"data": example(folder)}}
        answer = api.post(f"/endpoints/tab-fleet/models/forest-{index}", json=body)
        assert answer.status_code == 200, answer.text
        assert answer.json() == in_process(folder, body, **TREES)
    # Each was loaded on its first call (whether it is still loaded depends on the replica's memory budget);
    # the listing shows what the replica last reported, so it may take a report or two to count them all.
    deadline = time.monotonic() + 15
    while True:
        listing = api.get("/v1/endpoints/tab-fleet/models").json()
        by_name = {item["name"]: item for item in listing["models"]}
        if all(by_name[f"forest-{index}"]["loads"] >= 1 for index in range(3)) or time.monotonic() > deadline:
            break
        time.sleep(0.3)
    assert all(by_name[f"forest-{index}"]["loads"] >= 1 for index in range(3)), listing


def tabular_untrusted(folder: Path) -> list[str]:
    from skops.io import get_untrusted_types

    model_file = json.loads((folder / "config.json").read_text())["sklearn"]["model"]["file"]
    return list(get_untrusted_types(file=folder / model_file))


def _worker_pids() -> list[int]:
    return [
        int(entry) for entry in os.listdir("/proc") if entry.isdigit() and "hubserve.worker" in _cmdline(int(entry))
    ]


def _cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        return ""
