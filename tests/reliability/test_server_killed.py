"""SIGKILL of `hubserve serve` mid-way through everything a user handed it; a new server on the same home.

No shutdown code runs on a SIGKILL, so whatever survives is what the store and storage held. After
the restart:

- endpoints: one being created (its replica still loading), one being updated (a rolling update
  to a new env) and one being deleted all end consistent: the created and the updated one run and
  describe the last accepted spec, their replicas answer from it (the handler reports its env); the
  deleted one is gone;
- async inferences, queued and running at the kill (a slow handler: each sleeps), each complete
  exactly once: one result file each with its own answer, one success webhook each, no extra
  files; none is lost and none fails;
- a batch job halfway resumes from its last commit: the output has every input record once, in
  order.
"""

from __future__ import annotations

import dataclasses
import json
import shutil
import textwrap
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.integration.conftest import RunningServer, start_server, stop_server, wait_for_state
from tests.integration.test_async_inference import DONE, Webhooks
from tests.integration.test_batch_jobs import lines, wait_job, wait_records, write_jsonl

HANDLER = textwrap.dedent(
    '''
    """Sleeps as asked (at start and per request), logs what it ran, and says which env it runs."""
    import json
    import os
    import time


    class EndpointHandler:
        def __init__(self, path=""):
            time.sleep(float(os.environ.get("INIT_SLEEP_S", "0")))

        def __call__(self, data):
            time.sleep(float(data.get("sleep", 0)))
            if data.get("log"):
                with open(data["log"], "a") as log:
                    log.write(json.dumps(data["inputs"]) + "\\n")
            return {"echo": data.get("inputs"), "generation": os.environ.get("GENERATION", "1")}
    '''
)
# What describe adds to the spec: the rest of its body is the spec as accepted.
LIVE_FIELDS = {"state", "reason", "url", "replicas", "requests", "asyncQueue", "runtime", "batching_limits",
               "cold_starts", "throttles", "model_setup_ms", "model_version", "notes", "created_at", "updated_at"}  # fmt: skip
ASYNC_COUNT = 10
RECORDS = 600


@pytest.fixture(scope="module")
def model(tmp_path_factory: pytest.TempPathFactory, tiny_models: dict[str, Path]) -> Path:
    folder = tmp_path_factory.mktemp("killed") / "model"
    shutil.copytree(tiny_models["text-classification"], folder)
    (folder / "handler.py").write_text(HANDLER)
    return folder


def spec(name: str, model: Path, env: dict[str, str] | None = None, **fields: Any) -> dict[str, Any]:
    return {"name": name, "model": {"source": str(model)}, "custom_code": True, "env": env or {}, **fields}


def accepted_spec(description: dict[str, Any]) -> dict[str, Any]:
    return {key: value for key, value in description.items() if key not in LIVE_FIELDS}


def answers(api: httpx.Client, name: str, count: int) -> set[str]:
    """The generations that ``count`` sync invocations were answered from."""
    found = set()
    for _ in range(count):
        response = api.post(f"/endpoints/{name}", json={"inputs": "who"})
        assert response.status_code == 200, response.text
        found.add(response.json()["generation"])
    return found


@dataclasses.dataclass
class Killed:
    """What the first server had accepted when it was killed, and the second server on its home."""

    server: RunningServer
    restarted: float  # monotonic, when the second server answered /health
    described: dict[str, dict[str, Any]]  # fresh and steady as described just before the kill
    ids: list[str]  # the async inferences accepted
    statuses: Counter[str]  # their statuses at the kill
    job_id: str
    done_at_kill: int  # the batch job's committed records at the kill
    ran: Path  # the handler's log of async inferences run
    async_out: Path
    batch_out: Path
    webhooks: Webhooks


@pytest.fixture(scope="module")
def killed(tmp_path_factory: pytest.TempPathFactory, model: Path) -> Iterator[Killed]:
    """One server given endpoints, async work and a batch job, killed with all of it under way."""
    root = tmp_path_factory.mktemp("killed-server")
    home, data = root / "home", root / "data"
    env = {"HUBSERVE_STORAGE_ROOTS": json.dumps([str(data)])}
    source = write_jsonl(data / "in" / "records.jsonl", [{"inputs": f"k{i}", "sleep": 0.01} for i in range(RECORDS)])
    ran, async_out, batch_out = data / "ran.log", data / "async-out", data / "batch-out"
    webhooks = Webhooks()
    notification = {"success_url": f"{webhooks.url}/ok", "error_url": f"{webhooks.url}/error"}
    first = start_server(home, extra_env=env)
    second: RunningServer | None = None
    try:
        with httpx.Client(base_url=first.url, headers=first.headers(), timeout=60) as api:
            slow = spec("slow", model, compute={"type": "serverless", "max_concurrency": 2},
                        async_inference={"notification": notification, "output_location": str(async_out),
                                         "max_concurrent_invocations_per_replica": 2})  # fmt: skip
            for body in (slow, spec("records", model), spec("steady", model), spec("doomed", model)):
                assert api.post("/v1/endpoints", json=body).status_code == 201
            for name in ("slow", "records", "steady", "doomed"):
                wait_for_state(api, name, {"running"})

            ids = []
            for index in range(ASYNC_COUNT):
                body = {"inputs": f"a{index}", "sleep": 0.6, "log": str(ran)}
                response = api.post("/endpoints/slow/async-invocations", json=body)
                assert response.status_code == 202, response.text
                ids.append(response.json()["inferenceId"])
            job = api.post("/v1/batch-jobs", json={"endpoint": "records", "input": str(source),
                                                   "output": str(batch_out), "batch_size": 4, "concurrency": 2}).json()  # fmt: skip
            wait_records(api, job["id"], 100)
            deadline = time.monotonic() + 30
            while True:  # some finished, some running, some queued
                statuses = Counter(api.get(f"/endpoints/slow/async-invocations/{i}").json()["status"] for i in ids)
                if statuses["succeeded"] >= 2 and statuses["running"] >= 1 and statuses["queued"] >= 1:
                    break
                assert time.monotonic() < deadline, statuses
                time.sleep(0.05)

            # Three operations accepted, none finished: the new replicas take 3 s to load.
            created = api.post("/v1/endpoints", json=spec("fresh", model, {"INIT_SLEEP_S": "3"}))
            assert created.status_code == 201, created.text
            update = spec("steady", model, {"INIT_SLEEP_S": "3", "GENERATION": "2"})
            assert api.put("/v1/endpoints/steady", json=update).status_code == 200
            assert api.delete("/v1/endpoints/doomed").status_code == 202
            described = {name: api.get(f"/v1/endpoints/{name}").json() for name in ("fresh", "steady")}
            done_at_kill = api.get(f"/v1/batch-jobs/{job['id']}").json()["records"]["done"]
        first.process.kill()  # SIGKILL: no shutdown code runs
        first.process.wait(10)

        second = start_server(home, extra_env=env)
        yield Killed(second, time.monotonic(), described, ids, statuses, job["id"], done_at_kill, ran,
                     async_out, batch_out, webhooks)  # fmt: skip
    finally:
        webhooks.close()
        for server in (first, second):
            if server is not None:
                stop_server(server)


def test_endpoint_create_update_delete_survive_a_kill(killed: Killed) -> None:
    states = {name: description["state"] for name, description in killed.described.items()}
    assert states["fresh"] != "running" and states["steady"] == "updating", states  # the kill landed mid-way
    with httpx.Client(base_url=killed.server.url, headers=killed.server.headers(), timeout=60) as api:
        wait_for_state(api, "doomed", {"gone"}, timeout=60)
        for name in ("fresh", "steady"):
            description = wait_for_state(api, name, {"running", "failed"}, timeout=90)
            assert description["state"] == "running", description
            assert accepted_spec(description) == accepted_spec(killed.described[name])
        recovered_s = time.monotonic() - killed.restarted
        assert wait_for_state(api, "steady", {"running"})["env"] == {"INIT_SLEEP_S": "3", "GENERATION": "2"}
        assert answers(api, "steady", 6) == {"2"}  # every replica runs the updated spec
        assert answers(api, "fresh", 3) == {"1"}
        assert api.get("/v1/endpoints/doomed").status_code == 404
        names = sorted(item["name"] for item in api.get("/v1/endpoints").json()["items"])
        assert names == ["fresh", "records", "slow", "steady"], names
    print(f"endpoints consistent {recovered_s:.1f} s after the restart; at the kill: {states}, doomed deleting")


def test_async_inferences_complete_exactly_once(killed: Killed) -> None:
    finished = {}
    with httpx.Client(base_url=killed.server.url, headers=killed.server.headers(), timeout=60) as api:
        deadline = time.monotonic() + 90
        for inference_id in killed.ids:
            while (status := api.get(f"/endpoints/slow/async-invocations/{inference_id}").json())["status"] not in DONE:
                assert time.monotonic() < deadline, status
                time.sleep(0.1)
            finished[inference_id] = status
    async_s = time.monotonic() - killed.restarted
    time.sleep(0.5)  # the last webhooks are sent without waiting
    outcomes = Counter(status["status"] for status in finished.values())
    runs = Counter(json.loads(line) for line in killed.ran.read_text().splitlines())
    hooks = Counter(call["inferenceId"] for call in killed.webhooks.received)
    rerun = sorted(inference_id for inference_id, status in finished.items() if status["attempts"] > 1)
    print(f"async: {len(killed.ids)} accepted, at the kill {dict(killed.statuses)}; after: {dict(outcomes)}, "
          f"{len(rerun)} attempted twice, handler runs per input {sorted(Counter(runs.values()).items())}, "
          f"{sum(hooks.values())} webhooks, all done {async_s:.1f} s after the restart")  # fmt: skip

    assert outcomes == {"succeeded": ASYNC_COUNT}, finished
    for index, inference_id in enumerate(killed.ids):
        result = json.loads(Path(finished[inference_id]["outputLocation"]).read_text())
        assert result == {"echo": f"a{index}", "generation": "1"}
    names = sorted(p.name for p in killed.async_out.iterdir())
    assert names == sorted(f"{i}.out" for i in killed.ids), names  # one each, no partial or extra files
    assert all(runs[f"a{index}"] >= 1 for index in range(ASYNC_COUNT)), runs
    assert len(rerun) <= killed.statuses["running"], rerun  # only what was running at the kill ran again
    assert set(hooks) <= set(killed.ids) and all(count == 1 for count in hooks.values()), hooks  # never twice
    assert not [call for call in killed.webhooks.received if call["status"] != "succeeded"]


def test_batch_job_resumes_without_duplicates_or_gaps(killed: Killed) -> None:
    with httpx.Client(base_url=killed.server.url, headers=killed.server.headers(), timeout=60) as api:
        done = wait_job(api, killed.job_id, {"completed", "failed"}, timeout=90)
    batch_s = time.monotonic() - killed.restarted
    out = lines(killed.batch_out / "records.jsonl.out")
    print(f"batch: {RECORDS} records in, {killed.done_at_kill} committed at the kill, resumed at "
          f"{done['resumed_at_record']}, {len(out)} out, completed {batch_s:.1f} s after the restart")  # fmt: skip
    assert done["status"] == "completed", done
    assert done["records"] == {"total": RECORDS, "done": RECORDS, "succeeded": RECORDS, "failed": 0, "remaining": 0}
    assert done["runs"] == 2 and killed.done_at_kill <= done["resumed_at_record"] < RECORDS, done
    assert [row["echo"] for row in out] == [f"k{i}" for i in range(RECORDS)]
