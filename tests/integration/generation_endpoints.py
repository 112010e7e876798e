"""Generative and embedding endpoints the route tests share, on the session's real server.

A Llama-shaped causal LM with a chat template (the tokenizer's ``chat_template``), the tiny GPT-2
of ``tests/tiny_models.py`` (no chat template), its tiny BART as a summarization endpoint, and the
tiny sentence-transformers and bare-BERT folders for the embeddings route. Each is created once per server, whichever test module asks first.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import httpx
import tiny_models
import torch
from transformers import AutoTokenizer, LlamaConfig, LlamaForCausalLM

from tests.integration.conftest import wait_for_state

LLAMA, GPT2, SUMMARIZE, EMBED, FEATURES = "gen-llama", "gen-gpt2", "gen-summarize", "gen-embed", "gen-features"
CAP = 8000  # generation.max_new_tokens_limit of the Llama endpoint: a stream that long runs for many seconds
CHAT_TEMPLATE = (
    "{% for m in messages %}{{ m['role'] }}: {{ m['content'] }}\n{% endfor %}"
    "{% if add_generation_prompt %}assistant:{% endif %}"
)


def build_llama_chat(dst: Path) -> Path:
    """A 2-layer, 32-wide Llama with the BERT tokenizer and a chat template; room for 8,192 positions."""
    if (dst / "config.json").exists():
        return dst
    torch.manual_seed(15)
    config = LlamaConfig(
        vocab_size=tiny_models.VOCAB_SIZE, hidden_size=32, intermediate_size=37, num_hidden_layers=2,
        num_attention_heads=2, num_key_value_heads=2, max_position_embeddings=8192,
        bos_token_id=tiny_models.CLS_ID, eos_token_id=tiny_models.SEP_ID, pad_token_id=tiny_models.PAD_ID,
    )  # fmt: skip
    dst.mkdir(parents=True, exist_ok=True)
    LlamaForCausalLM(config).save_pretrained(str(dst), safe_serialization=True)
    tokenizer = AutoTokenizer.from_pretrained(str(tiny_models.minilm_dir()))  # a fresh copy: the template is this one's
    tokenizer.chat_template = CHAT_TEMPLATE
    tokenizer.save_pretrained(str(dst))
    return dst


def ensure_endpoints(api: httpx.Client, tiny: dict[str, Path], root: Path) -> dict[str, str]:
    """Create the shared endpoints unless they exist, and wait until they run."""
    specs: list[dict[str, Any]] = [
        {"name": LLAMA, "model": {"source": str(build_llama_chat(root / "llama-chat")), "task": "text-generation"},
         "compute": {"type": "serverless", "max_concurrency": 4}, "generation": {"max_new_tokens_limit": CAP}},
        {"name": GPT2, "model": {"source": str(tiny["text-generation"]), "task": "text-generation"}},
        {"name": SUMMARIZE, "model": {"source": str(tiny["summarization"]), "task": "summarization"}},
        {"name": EMBED, "model": {"source": str(tiny["sentence-embeddings"]), "task": "sentence-embeddings"}},
        {"name": FEATURES, "model": {"source": str(tiny["feature-extraction"]), "task": "feature-extraction"}},
    ]  # fmt: skip
    for spec in specs:
        if api.get(f"/v1/endpoints/{spec['name']}").status_code == 404:
            response = api.post("/v1/endpoints", json=spec)
            assert response.status_code == 201, response.text
    for spec in specs:
        state = wait_for_state(api, spec["name"], {"running", "failed"}, timeout=300)
        assert state["state"] == "running", state
    return {spec["name"]: spec["name"] for spec in specs}


def nothing_in_flight(api: httpx.Client, name: str) -> bool:
    """Neither the gateway (describe's in-flight requests) nor the replica's engine (running sequences,
    as Prometheus last sampled them) holds anything for ``name``."""
    if api.get(f"/v1/endpoints/{name}").json()["requests"]["in_flight"] != 0:
        return False
    prefix = f'hubserve_sequences_running{{endpoint="{name}"}} '
    running = [line.removeprefix(prefix) for line in api.get("/metrics").text.splitlines() if line.startswith(prefix)]
    return all(float(value) == 0 for value in running)


def wait_until_nothing_in_flight(api: httpx.Client, name: str, timeout: float = 8.0) -> None:
    """Well before a CAP-token sequence could end by itself (it runs for many seconds)."""
    deadline = time.monotonic() + timeout
    while not nothing_in_flight(api, name):
        assert time.monotonic() < deadline, f"{name} still has something in flight {timeout}s after the client left"
        time.sleep(0.1)
