"""Two real servers on one PostgreSQL store behind (as if) a load balancer: an invocation that reaches
the server that does not run the endpoint is forwarded to the one that does (the holder of its lease),
in every dialect, streams included; an unauthenticated one is refused where it arrived; a dead holder
gets 503 naming it until the other server takes the endpoint over and serves it itself.

The tests share one pair of servers and run in file order; the last one kills the holder.
"""

from __future__ import annotations

import json
import os
import signal
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import httpx
import pytest
import sqlalchemy as sa
from botocore.config import Config
from botocore.exceptions import ClientError

from hubserve.api.forwarding import RETRY_AFTER_S
from tests.integration.conftest import RunningServer, stop_server, wait_for_state
from tests.integration.generation_endpoints import CAP, build_llama_chat, wait_until_nothing_in_flight
from tests.postgres.conftest import fresh_database
from tests.postgres.test_servers_on_postgres import serve_on

CLASSIFY, GENERATE = "fwd-classify", "fwd-generate"
TASKS = {CLASSIFY: "text-classification", GENERATE: "text-generation"}
SSE = {"Accept": "text/event-stream"}


class Pair:
    """Server ``a`` holds the endpoints (they were created through it); ``b`` only forwards."""

    def __init__(self, a: RunningServer, b: RunningServer, a_id: str, b_id: str, store: str) -> None:
        self.a, self.b, self.a_id, self.b_id, self.store = a, b, a_id, b_id, store


@pytest.fixture(scope="module")
def module_pg_url(postgres_url: str) -> Iterator[str]:
    """A new database on the session's server, for this module's pair of servers."""
    with fresh_database(postgres_url) as url:
        yield url


@pytest.fixture(scope="module")
def pair(module_pg_url: str, tmp_path_factory: pytest.TempPathFactory, tiny_models: dict[str, Path]) -> Iterator[Pair]:
    root = tmp_path_factory.mktemp("forwarding")
    a = serve_on(root / "home-a", module_pg_url)
    b: RunningServer | None = None
    try:
        b = serve_on(root / "home-b", module_pg_url)
        ids = [(root / home / "server-id").read_text().strip() for home in ("home-a", "home-b")]
        with httpx.Client(base_url=a.url, headers=a.headers(), timeout=60) as api_a:
            for name, model, extra in (
                (CLASSIFY, tiny_models["text-classification"], {"async_inference": {}}),
                (GENERATE, build_llama_chat(root / "llama-chat"), {"generation": {"max_new_tokens_limit": CAP}}),
            ):
                spec = {"name": name, "model": {"source": str(model), "task": TASKS[name]}, **extra}
                assert api_a.post("/v1/endpoints", json=spec).status_code == 201
            for name in (CLASSIFY, GENERATE):
                assert wait_for_state(api_a, name, {"running"})["replicas"]["ready"] == 1
        yield Pair(a, b, ids[0], ids[1], module_pg_url)
    finally:
        if a.process.poll() is None:
            stop_server(a)
        if b is not None:
            stop_server(b)


def api(server: RunningServer) -> httpx.Client:
    return httpx.Client(base_url=server.url, headers=server.headers(), timeout=60)


def runtime(server: RunningServer) -> Any:
    """boto3's sagemaker-runtime pointed at ``server``, signing (SigV4) with the bootstrap token as secret."""
    return boto3.client(
        "sagemaker-runtime", endpoint_url=server.url, aws_access_key_id="hubserve",
        aws_secret_access_key=server.token, region_name="us-east-1",
        config=Config(retries={"total_max_attempts": 1, "mode": "standard"}),
    )  # fmt: skip


def ready(client: httpx.Client, name: str) -> int:
    answer = client.get(f"/v1/endpoints/{name}")
    assert answer.status_code == 200, answer.text
    return int(answer.json()["replicas"]["ready"])


def test_describe_on_either_server_names_the_holder(pair: Pair) -> None:
    with api(pair.a) as api_a, api(pair.b) as api_b:
        assert (ready(api_a, CLASSIFY), ready(api_b, CLASSIFY)) == (1, 0)  # the replicas run on A only
        assert api_b.get(f"/v1/endpoints/{CLASSIFY}").json()["server"] == pair.a_id
        assert api_a.get(f"/v1/endpoints/{CLASSIFY}").json()["server"] == pair.a_id


def test_the_hf_route_through_the_other_server_answers_as_the_holder_does(pair: Pair) -> None:
    body = {"inputs": ["I love this", "I hate that"]}
    with api(pair.a) as api_a, api(pair.b) as api_b:
        direct = api_a.post(f"/endpoints/{CLASSIFY}", json=body)
        forwarded = api_b.post(f"/endpoints/{CLASSIFY}", json=body, params={"trace": "1"})
        assert forwarded.status_code == direct.status_code == 200, forwarded.text
        assert forwarded.json() == direct.json()
        assert forwarded.headers["content-type"] == direct.headers["content-type"]
        assert forwarded.headers.get_list("date") and len(forwarded.headers.get_list("date")) == 1
        # the model's own refusal comes back as it is, status and body
        bad_direct = api_a.post(f"/endpoints/{CLASSIFY}", content=b"{not json", headers={"Content-Type": "application/json"})
        bad = api_b.post(f"/endpoints/{CLASSIFY}", content=b"{not json", headers={"Content-Type": "application/json"})
        assert bad.status_code == bad_direct.status_code and bad.status_code >= 400
        assert bad.json() == bad_direct.json()
        assert api_b.get(f"/endpoints/{CLASSIFY}/health").status_code == 200


def test_boto3_invokes_through_the_other_server_with_sigv4(pair: Pair) -> None:
    answer = runtime(pair.b).invoke_endpoint(
        EndpointName=CLASSIFY, Body=json.dumps({"inputs": "I love this"}), ContentType="application/json",
        Accept="application/json", CustomAttributes="trace=abc",
    )  # fmt: skip
    assert answer["CustomAttributes"] == "trace=abc" and answer["InvokedProductionVariant"] == "AllTraffic"
    direct = runtime(pair.a).invoke_endpoint(
        EndpointName=CLASSIFY, Body=json.dumps({"inputs": "I love this"}), ContentType="application/json"
    )
    assert json.loads(answer["Body"].read()) == json.loads(direct["Body"].read())
    # a wrong signature is refused (by B, before anything is forwarded), as SageMaker would
    wrong = boto3.client(
        "sagemaker-runtime", endpoint_url=pair.b.url, aws_access_key_id="hubserve", aws_secret_access_key="wrong",
        region_name="us-east-1", config=Config(retries={"total_max_attempts": 1, "mode": "standard"}),
    )  # fmt: skip
    with pytest.raises(ClientError) as refused:
        wrong.invoke_endpoint(EndpointName=CLASSIFY, Body=b'{"inputs": "x"}', ContentType="application/json")
    assert refused.value.response["ResponseMetadata"]["HTTPStatusCode"] == 401


def test_a_generation_streams_through_the_other_server(pair: Pair) -> None:
    body = {"inputs": "hello", "parameters": {"max_new_tokens": 6, "do_sample": False}}

    def events(server: RunningServer) -> list[dict[str, Any]]:
        url = f"{server.url}/endpoints/{GENERATE}"
        with httpx.stream("POST", url, json=body, headers={**server.headers(), **SSE}, timeout=60) as response:
            assert response.status_code == 200, response.read()
            assert response.headers["content-type"].startswith("text/event-stream")
            return [json.loads(line[5:]) for line in response.iter_lines() if line.startswith("data:")]

    forwarded = events(pair.b)
    assert len(forwarded) >= 2 and forwarded[-1].get("generated_text") is not None
    assert forwarded == events(pair.a)  # greedy: the same events either way
    parts = [e["PayloadPart"]["Bytes"] for e in runtime(pair.b).invoke_endpoint_with_response_stream(
        EndpointName=GENERATE, Body=json.dumps({**body, "stream": True}), ContentType="application/json",
    )["Body"]]  # fmt: skip
    assert len(parts) >= 2 and all(part.startswith(b"data:") for part in parts)


def test_the_openai_dialect_goes_through_the_other_server(pair: Pair) -> None:
    body = {"messages": [{"role": "user", "content": "hi"}], "max_tokens": 3, "temperature": 0}
    with api(pair.a) as api_a, api(pair.b) as api_b:
        direct = api_a.post(f"/endpoints/{GENERATE}/v1/chat/completions", json=body)
        forwarded = api_b.post(f"/endpoints/{GENERATE}/v1/chat/completions", json=body)
        assert forwarded.status_code == direct.status_code == 200, forwarded.text
        assert forwarded.json()["choices"] == direct.json()["choices"]
        assert api_b.get(f"/endpoints/{GENERATE}/v1/models").json() == api_a.get(f"/endpoints/{GENERATE}/v1/models").json()


def test_a_caller_that_hangs_up_cancels_the_forwarded_request(pair: Pair) -> None:
    body = {"inputs": "hello", "parameters": {"max_new_tokens": CAP}}  # alone, it would run for many seconds
    url = f"{pair.b.url}/endpoints/{GENERATE}/generate_stream"
    with httpx.stream("POST", url, json=body, headers=pair.b.headers(), timeout=60) as response:
        assert response.status_code == 200
        lines = response.iter_lines()
        seen = [line for _, line in zip(range(6), lines, strict=False)]
    assert sum(line.startswith("data:") for line in seen) == 3
    with api(pair.a) as api_a:
        wait_until_nothing_in_flight(api_a, GENERATE)  # the holder saw the hang-up and stopped generating


def test_an_async_inference_accepted_by_the_other_server_completes_once(pair: Pair) -> None:
    with api(pair.b) as api_b:
        accepted = api_b.post(f"/endpoints/{CLASSIFY}/async-invocations", json={"inputs": "in a while"})
        assert accepted.status_code == 202, accepted.text
        inference_id = accepted.json()["inferenceId"]
        deadline = time.monotonic() + 60
        while (status := api_b.get(f"/endpoints/{CLASSIFY}/async-invocations/{inference_id}").json())["status"] in (
            "queued", "running",
        ):  # fmt: skip
            assert time.monotonic() < deadline, status
            time.sleep(0.2)
        assert status["status"] == "succeeded", status
    engine = sa.create_engine(pair.store)
    with engine.connect() as conn:
        rows = conn.execute(sa.text("SELECT attempts, status FROM async_inferences WHERE id = :i"), {"i": inference_id}).all()
    engine.dispose()
    assert [tuple(row) for row in rows] == [(1, "succeeded")]


def test_an_unauthenticated_request_is_refused_where_it_arrives(pair: Pair) -> None:
    os.kill(pair.a.process.pid, signal.SIGSTOP)  # a request forwarded now would hang: none must be
    try:
        refused = httpx.post(f"{pair.b.url}/endpoints/{CLASSIFY}", json={"inputs": "x"}, timeout=5)
        assert refused.status_code == 401, refused.text
        wrong = httpx.post(f"{pair.b.url}/endpoints/{CLASSIFY}", json={"inputs": "x"}, timeout=5,
                           headers={"Authorization": "Bearer not-a-token"})  # fmt: skip
        assert wrong.status_code == 401, wrong.text
    finally:
        os.kill(pair.a.process.pid, signal.SIGCONT)


def test_a_forwarded_request_is_never_forwarded_again(pair: Pair) -> None:
    with api(pair.b) as api_b:
        answer = api_b.post(f"/endpoints/{CLASSIFY}", json={"inputs": "x"}, headers={"X-Hubserve-Forwarded-By": "elsewhere"})
    assert answer.status_code == 503 and pair.a_id in answer.text, answer.text  # B does not hold it: 503, no loop


def test_a_dead_holder_gets_503_naming_it_until_the_other_server_takes_over(pair: Pair) -> None:
    os.kill(pair.a.process.pid, signal.SIGKILL)
    pair.a.process.wait()
    killed_at = time.monotonic()
    # each dialect's 503 while the dead holder's lease still runs
    with pytest.raises(ClientError) as unavailable:
        runtime(pair.b).invoke_endpoint(EndpointName=GENERATE, Body=b'{"inputs": "x"}', ContentType="application/json")
    error = unavailable.value.response
    assert error["ResponseMetadata"]["HTTPStatusCode"] == 503 and error["Error"]["Code"] == "ServiceUnavailable"
    assert pair.a_id in error["Error"]["Message"]
    with api(pair.b) as api_b:
        chat = api_b.post(f"/endpoints/{GENERATE}/v1/completions", json={"prompt": "hi", "max_tokens": 2})
        assert chat.status_code == 503 and pair.a_id in chat.json()["error"]["message"], chat.text
        # async status and lists are the shared store's: any server answers them, the holder dead or alive
        listed = api_b.get(f"/endpoints/{CLASSIFY}/async-invocations")
        assert listed.status_code == 200 and "succeeded" in listed.text, listed.text
        seen_503 = 0
        while True:
            answer = api_b.post(f"/endpoints/{CLASSIFY}", json={"inputs": "x"})
            if answer.status_code == 200:
                break
            assert answer.status_code == 503, answer.text
            assert pair.a_id in answer.json()["error"] or "taken over" in answer.text, answer.text
            if pair.a_id in answer.text:
                assert answer.headers.get("retry-after") == str(RETRY_AFTER_S), answer.headers
            seen_503 += 1
            assert time.monotonic() - killed_at < 45, answer.text
            time.sleep(0.5)
        assert seen_503 > 0  # the lease outlived the holder for a while
        assert ready(api_b, CLASSIFY) == 1  # served by B's own replica now
        assert api_b.get(f"/v1/endpoints/{CLASSIFY}").json()["server"] == pair.b_id
