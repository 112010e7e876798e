"""OpenAI's routes on generative and embedding endpoints, with the ``openai`` package pointed at them.

``OpenAI(base_url=<server>/endpoints/<name>/v1)`` works unchanged: chat completions and completions,
streaming and not, ``stream_options.include_usage``, the endpoint as the one model, embeddings;
errors come back as the client's typed exceptions with OpenAI's error body.
"""

from __future__ import annotations

from pathlib import Path

import httpx
import openai
import pytest

from tests.integration.conftest import RunningServer
from tests.integration.generation_endpoints import (
    CAP,
    EMBED,
    FEATURES,
    GPT2,
    LLAMA,
    ensure_endpoints,
    wait_until_nothing_in_flight,
)

MESSAGES = [{"role": "user", "content": "Tell me a story"}]


@pytest.fixture(scope="module")
def endpoints(api: httpx.Client, tiny_models: dict[str, Path], tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    return ensure_endpoints(api, tiny_models, tmp_path_factory.mktemp("openai-models"))


def client(server: RunningServer, name: str) -> openai.OpenAI:
    return openai.OpenAI(base_url=f"{server.url}/endpoints/{name}/v1", api_key=server.token, max_retries=0, timeout=60)


def test_chat_completion_whole_and_streamed(server: RunningServer, endpoints: dict[str, str]) -> None:
    llm = client(server, LLAMA)
    whole = llm.chat.completions.create(model=LLAMA, messages=MESSAGES, max_tokens=8)  # type: ignore[arg-type]
    assert whole.object == "chat.completion" and whole.model == LLAMA
    assert whole.choices[0].message.role == "assistant" and whole.choices[0].finish_reason in ("length", "stop")
    assert whole.usage is not None and whole.usage.completion_tokens <= 8
    assert whole.usage.total_tokens == whole.usage.prompt_tokens + whole.usage.completion_tokens
    chunks = list(llm.chat.completions.create(model=LLAMA, messages=MESSAGES, max_tokens=8, stream=True,  # type: ignore[arg-type]
                                              stream_options={"include_usage": True}))  # fmt: skip
    assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices) == whole.choices[0].message.content
    assert chunks[-1].choices == [] and chunks[-1].usage == whole.usage
    assert chunks[-2].choices[0].finish_reason == whole.choices[0].finish_reason


def test_completions_and_models(server: RunningServer, endpoints: dict[str, str]) -> None:
    llm = client(server, GPT2)
    whole = llm.completions.create(model="anything", prompt="Once upon a time", max_tokens=5)
    assert whole.object == "text_completion" and whole.model == GPT2 and whole.usage is not None
    assert whole.choices[0].finish_reason in ("length", "stop") and whole.usage.completion_tokens <= 5
    pieces = [c.choices[0].text for c in llm.completions.create(model=GPT2, prompt="Once upon a time", max_tokens=5, stream=True)]
    assert "".join(pieces) == whole.choices[0].text
    echoed = llm.completions.create(model=GPT2, prompt="Once upon a time", max_tokens=5, echo=True)
    assert echoed.choices[0].text.lower().startswith("once upon a time")
    assert [model.id for model in llm.models.list()] == [GPT2]
    assert llm.models.retrieve(GPT2).owned_by == "hubserve"


def test_seed_and_temperature(server: RunningServer, endpoints: dict[str, str]) -> None:
    llm = client(server, LLAMA)
    texts = {llm.completions.create(model=LLAMA, prompt="Hi", max_tokens=10, temperature=1.2, seed=3).choices[0].text for _ in range(2)}
    assert len(texts) == 1  # the same seed, the same text
    stopped = llm.completions.create(model=LLAMA, prompt="Hi", max_tokens=10, stop=[next(iter(texts)).strip()[-2:]],
                                     temperature=1.2, seed=3)  # fmt: skip
    assert stopped.choices[0].finish_reason == "stop"


def test_errors_in_openais_shape(server: RunningServer, endpoints: dict[str, str]) -> None:
    with pytest.raises(openai.BadRequestError) as no_template:
        client(server, GPT2).chat.completions.create(model=GPT2, messages=MESSAGES)  # type: ignore[arg-type]
    assert "chat template" in no_template.value.message and no_template.value.body["type"] == "invalid_request_error"  # type: ignore[index]
    with pytest.raises(openai.BadRequestError) as many:
        client(server, LLAMA).chat.completions.create(model=LLAMA, messages=MESSAGES, n=2)  # type: ignore[arg-type]
    assert many.value.body["param"] == "n"  # type: ignore[index]
    with pytest.raises(openai.UnprocessableEntityError) as over:
        client(server, LLAMA).chat.completions.create(model=LLAMA, messages=MESSAGES, max_tokens=CAP + 1)  # type: ignore[arg-type]
    assert over.value.body["param"] == "max_tokens" and over.value.body["code"] == "GenerationLimitExceeded"  # type: ignore[index]
    with pytest.raises(openai.NotFoundError):
        client(server, "not-an-endpoint").completions.create(model="x", prompt="Hi")
    with pytest.raises(openai.BadRequestError) as wrong_task:
        client(server, EMBED).completions.create(model=EMBED, prompt="Hi")
    assert "sentence-embeddings" in wrong_task.value.message


def test_closing_a_stream_frees_the_slot(api: httpx.Client, server: RunningServer, endpoints: dict[str, str]) -> None:
    llm = client(server, LLAMA)
    stream = llm.completions.create(model=LLAMA, prompt="Hi", max_tokens=CAP, stream=True)
    for _, _chunk in zip(range(3), stream, strict=False):
        pass
    stream.close()
    wait_until_nothing_in_flight(api, LLAMA)
    assert llm.completions.create(model=LLAMA, prompt="Hi", max_tokens=2).choices[0].finish_reason in ("length", "stop")


@pytest.mark.parametrize("name", [EMBED, FEATURES])
def test_embeddings(server: RunningServer, endpoints: dict[str, str], name: str) -> None:
    llm = client(server, name)
    one = llm.embeddings.create(model=name, input="hello world")  # the client asks for base64 and decodes it
    assert len(one.data) == 1 and len(one.data[0].embedding) == 32 and one.model == name
    many = llm.embeddings.create(model=name, input=["a", "b", "hello world"], encoding_format="float")
    assert [item.index for item in many.data] == [0, 1, 2]
    assert many.data[2].embedding == pytest.approx(one.data[0].embedding, abs=1e-5)
