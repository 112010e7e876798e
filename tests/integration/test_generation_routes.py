"""Generative endpoints through the real server, each route with its real client.

huggingface_hub's ``InferenceClient(model=<endpoint url>)`` (text_generation with and without
stream and details, chat_completion with and without stream), TGI's own routes, ``curl -N`` for the
server-sent events' framing, boto3's ``invoke_endpoint_with_response_stream`` and the SDK's
``Predictor.predict_stream``; a client that leaves mid-stream frees its slot.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path
from typing import Any

import boto3
import httpx
import pytest
from botocore.config import Config
from huggingface_hub import (
    ChatCompletionOutput,
    InferenceClient,
    TextGenerationOutput,
    TextGenerationStreamOutput,
    constants,
)

from hubserve.sdk.sagemaker import Predictor, Session
from tests.integration.conftest import RunningServer
from tests.integration.generation_endpoints import (
    CAP,
    GPT2,
    LLAMA,
    SUMMARIZE,
    ensure_endpoints,
    wait_until_nothing_in_flight,
)

PROMPT = "Once upon a time"


@pytest.fixture(scope="module")
def endpoints(api: httpx.Client, tiny_models: dict[str, Path], tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    return ensure_endpoints(api, tiny_models, tmp_path_factory.mktemp("generation-models"))


@pytest.fixture(autouse=True)
def hub_client_online(monkeypatch: pytest.MonkeyPatch) -> None:
    """HF_HUB_OFFLINE (the suite's, so nothing reaches the real Hub) makes huggingface_hub refuse every
    request, hubserve's included; its client talks only to the test server here."""
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)


def client(server: RunningServer, name: str) -> InferenceClient:
    return InferenceClient(model=f"{server.url}/endpoints/{name}", token=server.token, timeout=60)


def _events(response: httpx.Response) -> list[dict[str, Any]]:
    return [json.loads(line[len("data:"):]) for line in response.iter_lines() if line.startswith("data:")]


# --- huggingface_hub's InferenceClient ---------------------------------------------------------


def test_text_generation_one_piece_and_with_details(server: RunningServer, endpoints: dict[str, str]) -> None:
    tgi = client(server, LLAMA)
    text = tgi.text_generation(PROMPT, max_new_tokens=5, return_full_text=True)
    assert isinstance(text, str) and text.lower().startswith(PROMPT.lower())
    output = tgi.text_generation(PROMPT, max_new_tokens=5, details=True)  # TGI's default: the new text only
    assert isinstance(output, TextGenerationOutput) and output.details is not None
    assert output.details.generated_tokens == len(output.details.tokens) <= 5
    assert output.details.finish_reason in ("length", "eos_token")
    assert "".join(token.text for token in output.details.tokens) == output.generated_text
    assert text.lower() == (PROMPT + output.generated_text).lower()  # greedy: equal requests, equal text


def test_text_generation_streams_tokens(server: RunningServer, endpoints: dict[str, str]) -> None:
    tgi = client(server, LLAMA)
    whole = tgi.text_generation(PROMPT, max_new_tokens=6, return_full_text=False)
    tokens = list(tgi.text_generation(PROMPT, max_new_tokens=6, stream=True))
    assert all(isinstance(token, str) for token in tokens) and "".join(tokens) == whole
    detailed = list(tgi.text_generation(PROMPT, max_new_tokens=6, stream=True, details=True))
    assert all(isinstance(item, TextGenerationStreamOutput) for item in detailed)
    assert all(item.generated_text is None for item in detailed[:-1])
    assert detailed[-1].generated_text == whole and detailed[-1].details is not None
    assert detailed[-1].details.finish_reason in ("length", "eos_token")


def test_chat_completion_through_the_template(server: RunningServer, endpoints: dict[str, str]) -> None:
    chat = client(server, LLAMA)
    messages = [{"role": "user", "content": "Tell me a story"}]
    answer = chat.chat_completion(messages, max_tokens=6)
    assert isinstance(answer, ChatCompletionOutput) and answer.choices[0].message.role == "assistant"
    assert answer.usage.completion_tokens <= 6 and answer.usage.prompt_tokens > 0
    streamed = list(chat.chat_completion(messages, max_tokens=6, stream=True))
    assert "".join(chunk.choices[0].delta.content or "" for chunk in streamed if chunk.choices) == answer.choices[0].message.content
    assert streamed[-1].choices[0].finish_reason in ("length", "stop")


# --- TGI's routes and the toolkit route -------------------------------------------------------


def test_generate_with_prefill_details(server: RunningServer, endpoints: dict[str, str]) -> None:
    body = {"inputs": PROMPT, "parameters": {"max_new_tokens": 3, "details": True, "decoder_input_details": True}}
    answer = httpx.post(f"{server.url}/endpoints/{LLAMA}/generate", headers=server.headers(), json=body, timeout=60)
    assert answer.status_code == 200, answer.text
    output = TextGenerationOutput.parse_obj_as_instance(answer.json())
    assert output.details is not None and len(output.details.tokens) == output.details.generated_tokens
    assert len(output.details.prefill) >= 1 and output.details.prefill[0].logprob is None
    assert "x-model-latency-ms" in answer.headers


def test_toolkit_route_streams_tgi_events_when_asked(server: RunningServer, endpoints: dict[str, str]) -> None:
    body = {"inputs": PROMPT, "parameters": {"max_new_tokens": 4}}
    with httpx.stream("POST", f"{server.url}/endpoints/{LLAMA}", json=body, headers={**server.headers(), "Accept": "text/event-stream"},
                      timeout=60) as response:  # fmt: skip
        assert response.status_code == 200 and response.headers["content-type"].startswith("text/event-stream")
        events = _events(response)
    assert [event["index"] for event in events] == list(range(1, len(events) + 1))
    assert events[-1]["details"]["generated_tokens"] == len(events)
    one = httpx.post(f"{server.url}/endpoints/{LLAMA}", headers=server.headers(), json={**body, "parameters": {"max_new_tokens": 4, "details": True}}, timeout=60)
    assert one.status_code == 200 and one.json()[0]["details"]["generated_tokens"] == len(events)
    assert one.json()[0]["generated_text"] == events[-1]["generated_text"]  # greedy: the same text, streamed or not


def test_an_encoder_decoder_streams_too(server: RunningServer, endpoints: dict[str, str]) -> None:
    text = "The tower is 324 metres tall, about the same height as an 81-storey building."
    body = {"inputs": text, "parameters": {"max_new_tokens": 5}}
    with httpx.stream("POST", f"{server.url}/endpoints/{SUMMARIZE}/generate_stream", headers=server.headers(), json=body, timeout=60) as response:
        assert response.status_code == 200
        events = _events(response)
    assert events[-1]["details"]["generated_tokens"] == len(events) <= 5
    whole = httpx.post(f"{server.url}/endpoints/{SUMMARIZE}", headers=server.headers(), json=body, timeout=60).json()
    assert whole == [{"summary_text": events[-1]["generated_text"]}]  # the toolkit's key for the task
    assert client(server, SUMMARIZE).summarization(text, generate_parameters={"max_new_tokens": 5}).summary_text == whole[0]["summary_text"]


@pytest.mark.skipif(shutil.which("curl") is None, reason="needs curl")
def test_curl_sees_tgi_framing(server: RunningServer, endpoints: dict[str, str]) -> None:
    body = json.dumps({"inputs": PROMPT, "parameters": {"max_new_tokens": 3}})
    raw = subprocess.run(["curl", "-sN", "-X", "POST", f"{server.url}/endpoints/{LLAMA}/generate_stream",
                          "-H", "Content-Type: application/json", "-H", f"Authorization: Bearer {server.token}", "-d", body],
                         capture_output=True, text=True, timeout=60, check=True).stdout  # fmt: skip
    events = [event for event in raw.split("\n\n") if event]
    assert events and all(event.startswith('data:{"index":') for event in events), raw
    assert raw.endswith("\n\n") and '"generated_text":null' in events[0]
    assert '"details":{"finish_reason"' in events[-1]


def test_stop_sequences_and_seeds(server: RunningServer, endpoints: dict[str, str]) -> None:
    url = f"{server.url}/endpoints/{LLAMA}/generate"
    greedy = httpx.post(url, headers=server.headers(), json={"inputs": PROMPT, "parameters": {"max_new_tokens": 12}}, timeout=60).json()["generated_text"]
    stop = greedy.strip()[-3:]
    stopped = httpx.post(url, headers=server.headers(), json={"inputs": PROMPT, "parameters": {"max_new_tokens": 12, "stop": [stop], "details": True}},
                         timeout=60).json()  # fmt: skip
    assert stop not in stopped["generated_text"] and stopped["details"]["finish_reason"] == "stop_sequence"
    sampled = {"inputs": PROMPT, "parameters": {"max_new_tokens": 12, "do_sample": True, "temperature": 1.5, "seed": 7}}
    first, second = (httpx.post(url, headers=server.headers(), json=sampled, timeout=60).json()["generated_text"] for _ in range(2))
    assert first == second


def test_errors_in_tgis_shape(server: RunningServer, endpoints: dict[str, str]) -> None:
    over = httpx.post(f"{server.url}/endpoints/{LLAMA}/generate", headers=server.headers(), json={"inputs": PROMPT, "parameters": {"max_new_tokens": CAP + 1}})
    assert over.status_code == 422 and over.json()["error_type"] == "validation" and str(CAP) in over.json()["error"]
    missing = httpx.post(f"{server.url}/endpoints/no-such-endpoint/generate_stream", headers=server.headers(), json={"inputs": PROMPT})
    assert missing.status_code == 404 and "no-such-endpoint" in missing.json()["error"]
    unknown = httpx.post(f"{server.url}/endpoints/{GPT2}/generate", headers=server.headers(), json={"inputs": PROMPT, "parameters": {"typical_p": 0.5}})
    assert unknown.status_code == 400 and "`model_kwargs` are not used" in unknown.json()["error"]


# --- SageMaker's response stream ---------------------------------------------------------------


def test_boto3_reads_tgi_events_in_payload_parts(server: RunningServer, endpoints: dict[str, str]) -> None:
    runtime = boto3.client("sagemaker-runtime", endpoint_url=server.url, aws_access_key_id="hubserve",
                           aws_secret_access_key=server.token, region_name="us-east-1",
                           config=Config(retries={"total_max_attempts": 1}))  # fmt: skip
    body = json.dumps({"inputs": PROMPT, "parameters": {"max_new_tokens": 4}, "stream": True})
    answer = runtime.invoke_endpoint_with_response_stream(EndpointName=LLAMA, Body=body, ContentType="application/json")
    parts = [event["PayloadPart"]["Bytes"] for event in answer["Body"]]
    assert parts and all(part.startswith(b"data:{") and part.endswith(b"\n\n") for part in parts)
    last = json.loads(parts[-1][len(b"data:"):])
    assert last["details"]["generated_tokens"] == len(parts)
    sdk_parts = list(Predictor(LLAMA, Session(url=server.url, token=server.token)).predict_stream(json.loads(body)))
    assert sdk_parts == parts  # greedy: the same events, the SDK reading the same framing boto3 reads


# --- a client that leaves ------------------------------------------------------------------------


def test_leaving_mid_stream_frees_the_slot(api: httpx.Client, server: RunningServer, endpoints: dict[str, str]) -> None:
    body = {"inputs": PROMPT, "parameters": {"max_new_tokens": CAP}}
    with httpx.stream("POST", f"{server.url}/endpoints/{LLAMA}/generate_stream", headers=server.headers(), json=body, timeout=60) as response:
        lines = response.iter_lines()
        seen = [line for _, line in zip(range(6), lines, strict=False)]  # three events and their blank lines
    assert sum(line.startswith("data:") for line in seen) == 3
    wait_until_nothing_in_flight(api, LLAMA)
    short = httpx.post(f"{server.url}/endpoints/{LLAMA}/generate", headers=server.headers(), json={"inputs": PROMPT, "parameters": {"max_new_tokens": 2}}, timeout=60)
    assert short.status_code == 200


def test_a_short_request_is_not_held_behind_a_long_stream(server: RunningServer, endpoints: dict[str, str]) -> None:
    body = {"inputs": PROMPT, "parameters": {"max_new_tokens": CAP}}
    with httpx.stream("POST", f"{server.url}/endpoints/{LLAMA}/generate_stream", headers=server.headers(), json=body, timeout=60) as long:
        lines = long.iter_lines()
        assert next(lines).startswith("data:")  # the long one is generating
        short = httpx.post(f"{server.url}/endpoints/{LLAMA}/generate", headers=server.headers(),
                           json={"inputs": "Hi", "parameters": {"max_new_tokens": 3, "details": True}}, timeout=60)  # fmt: skip
        assert short.status_code == 200 and short.json()["details"]["generated_tokens"] <= 3
        later = [line for _, line in zip(range(20), lines, strict=False) if line.startswith("data:")]
    assert later and all('"generated_text":null' in line for line in later)  # still going after the short one ended
