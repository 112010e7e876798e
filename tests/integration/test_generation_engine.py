"""The replica's generation engine in real processes: a real replica, and a real ``hubserve serve``.

Replica level (``LocalBackend`` starting a real replica process from a ``ReplicaLaunch`` with the
generation settings, through its real ``SocketChannel``): the neutral stream (a part per token,
then the summary), the neutral answer, the cap's 422, a stream closed early, ``Stats`` frames.
Server level (the HF route, whatever dialect it renders generation in): the toolkit's answer,
the 422, concurrent requests sharing the running batch, an encoder-decoder endpoint, the spec's
``generation`` block.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import json
from collections.abc import Iterator
from contextlib import aclosing
from pathlib import Path
from typing import Any

import httpx
import msgspec
import pytest

from hubserve.backends import LocalBackend, ReplicaLaunch
from hubserve.errors import GenerationLimitExceeded
from hubserve.types import GENERATION_MEDIA_TYPE, CompletionSummary, GeneratedToken, Invocation
from tests.integration.conftest import wait_for_state

CAUSAL, ENCODER_DECODER = "gen-engine", "gen-engine-s2s"


def neutral(inputs: Any, stream: bool = False, **parameters: Any) -> Invocation:
    body = json.dumps({"inputs": inputs, "parameters": parameters}).encode()
    return Invocation(endpoint="e", body=body, accept=GENERATION_MEDIA_TYPE, stream=stream)


def test_a_real_replica_streams_tokens_and_reports_its_engine(tiny_models: dict[str, Path], tmp_path: Path) -> None:
    async def scenario() -> dict[str, Any]:
        backend = LocalBackend(tmp_path / "logs", zygote=False)
        launch = ReplicaLaunch(
            endpoint="gen", source=str(tiny_models["text-generation"]), task="text-generation",
            max_new_tokens_limit=40, default_max_new_tokens=5,
        )  # fmt: skip
        replica = await backend.start("g1", launch)
        try:
            channel = await backend.wait_ready(replica, 180)
            seen: dict[str, Any] = {}
            seen["parts"] = [part async for part in channel.stream(neutral("Once upon a time", True, max_new_tokens=8))]
            seen["default"] = msgspec.json.decode((await channel.call(neutral("Once upon a time"))).body, type=CompletionSummary)
            try:
                await channel.call(neutral("hi", max_new_tokens=41))
            except GenerationLimitExceeded as exc:
                seen["over"] = exc
            stream = channel.stream(neutral("Once upon a time", True, max_new_tokens=40))
            async with aclosing(stream):
                async for _ in stream:
                    break  # the client leaves after one token
            await asyncio.sleep(0.5)
            seen["stats"], seen["outstanding"] = channel.stats, channel.outstanding
            return seen
        finally:
            await backend.stop(replica)
            await backend.close()

    seen = asyncio.run(asyncio.wait_for(scenario(), 240))
    *tokens, final = seen["parts"]
    summary = msgspec.json.decode(final.body, type=CompletionSummary)
    assert final.final and final.content_type == GENERATION_MEDIA_TYPE and len(tokens) == summary.generated_tokens
    assert summary.generated_text == "".join(msgspec.json.decode(p.body, type=GeneratedToken).text for p in tokens)
    assert seen["default"].generated_tokens <= 5  # the launch's default_max_new_tokens
    assert "limit of 40" in str(seen["over"])
    stats = seen["stats"]
    assert stats is not None and stats.running == 0 and stats.waiting == 0 and stats.generated_tokens >= summary.generated_tokens
    assert seen["outstanding"] == 0


@pytest.fixture(scope="module")
def endpoints(api: httpx.Client, tiny_models: dict[str, Path]) -> Iterator[None]:
    specs: list[dict[str, Any]] = [
        {
            "name": CAUSAL, "model": {"source": str(tiny_models["text-generation"]), "task": "text-generation"},
            "generation": {"max_new_tokens_limit": 40, "default_max_new_tokens": 5},
            "compute": {"type": "serverless", "max_concurrency": 20},
        },
        {"name": ENCODER_DECODER, "model": {"source": str(tiny_models["text2text-generation"]), "task": "summarization"}},
    ]  # fmt: skip
    for spec in specs:
        response = api.post("/v1/endpoints", json=spec)
        assert response.status_code == 201, response.text
    for spec in specs:
        assert wait_for_state(api, spec["name"], {"running", "failed"}, timeout=300)["state"] == "running"
    yield
    for spec in specs:
        api.delete(f"/v1/endpoints/{spec['name']}")


def generate(api: httpx.Client, name: str, inputs: str, **parameters: Any) -> httpx.Response:
    return api.post(f"/endpoints/{name}", json={"inputs": inputs, "parameters": {"return_full_text": False, **parameters}})


def test_the_toolkit_answer_and_the_cap(api: httpx.Client, endpoints: None) -> None:
    first = generate(api, CAUSAL, "Once upon a time", max_new_tokens=6)
    assert first.status_code == 200, first.text
    assert isinstance(first.json()[0]["generated_text"], str)
    assert generate(api, CAUSAL, "Once upon a time", max_new_tokens=6).json() == first.json()  # greedy by default
    over = generate(api, CAUSAL, "hi", max_new_tokens=41)
    assert over.status_code == 422, over.text
    assert "40" in over.text and "generation.max_new_tokens_limit" in over.text
    bad = generate(api, CAUSAL, "hi", top_p=2)
    assert bad.status_code == 400 and "top_p" in bad.text


def test_concurrent_requests_each_get_their_own_answer(api: httpx.Client, endpoints: None) -> None:
    prompts = [f"prompt number {i} " + "word " * i for i in range(12)]

    def ask(prompt: str) -> str:
        response = generate(api, CAUSAL, prompt, max_new_tokens=12)
        assert response.status_code == 200, response.text
        text: str = response.json()[0]["generated_text"]
        return text

    with concurrent.futures.ThreadPoolExecutor(12) as pool:
        together = list(pool.map(ask, prompts))
    assert together == [ask(prompt) for prompt in prompts]  # sharing the batch changes no answer


def test_an_encoder_decoder_endpoint_answers(api: httpx.Client, endpoints: None) -> None:
    body = {"inputs": "A long text about many things.", "parameters": {"max_new_tokens": 5}}
    response = api.post(f"/endpoints/{ENCODER_DECODER}", json=body)
    assert response.status_code == 200, response.text
    assert isinstance(response.json()[0]["summary_text"], str)


def test_the_generation_block_is_checked_and_kept(api: httpx.Client, endpoints: None) -> None:
    assert api.get(f"/v1/endpoints/{CAUSAL}").json()["generation"] == {"max_new_tokens_limit": 40, "default_max_new_tokens": 5}
    bad = {
        "name": "gen-bad", "model": {"source": "/nowhere", "task": "text-generation"},
        "generation": {"max_new_tokens_limit": 4, "default_max_new_tokens": 8},
    }  # fmt: skip
    response = api.post("/v1/endpoints", json=bad)
    assert response.status_code in (400, 422) and "default_max_new_tokens" in response.text
