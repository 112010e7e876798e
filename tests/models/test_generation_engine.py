"""The continuous-batching engine on tiny GPT-2- and Llama-shaped models, in-process.

The strongest check of the cache merging: each prompt's greedy tokens, generated while other
prompts of other lengths join and leave the batch, equal ``model.generate`` for that prompt alone.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import tiny_models
import torch
from transformers import AutoModelForCausalLM, AutoTokenizer, LlamaConfig, LlamaForCausalLM

from hubserve.errors import GenerationLimitExceeded, ModelError, ValidationError
from hubserve.models.textgen import engine as engine_module
from hubserve.models.textgen.chat import encode_prompt
from hubserve.models.textgen.detok import IncrementalDecoder, StopMatcher
from hubserve.models.textgen.engine import GenerationEngine, wait_idle
from hubserve.models.textgen.params import GenerationLimits, Sampling, check_sampling
from hubserve.types import CompletionSummary, GeneratedToken

CHAT_TEMPLATE = (
    "{% for m in messages %}[{{ m['role'] }}] {{ m['content'] }} {% endfor %}"
    "{% if add_generation_prompt %}[assistant]{% endif %}"
)
PROMPTS = [
    "Hello",
    "Once upon a time there was a very long story about a dragon and a knight",
    "a b",
    "The quick brown fox jumps over the lazy dog",
    "one more prompt of middling length here",
]


def build_llama(dst: Path) -> Path:
    """A tiny Llama (rotary positions, grouped-query attention) whose tokenizer has a chat template."""
    torch.manual_seed(9)
    config = LlamaConfig(
        vocab_size=tiny_models.VOCAB_SIZE, hidden_size=32, intermediate_size=64, num_hidden_layers=2,
        num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=256,
        bos_token_id=tiny_models.CLS_ID, eos_token_id=tiny_models.SEP_ID, pad_token_id=tiny_models.PAD_ID,
    )  # fmt: skip
    model = LlamaForCausalLM(config)
    dst.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(dst)
    tokenizer = tiny_models.tokenizer()
    tokenizer.chat_template = CHAT_TEMPLATE
    tokenizer.save_pretrained(dst)
    tokenizer.chat_template = None
    return dst


class Collect:
    """A listener that keeps what it heard and says when the sequence ended."""

    def __init__(self) -> None:
        self.tokens: list[GeneratedToken] = []
        self.summary: CompletionSummary | None = None
        self.error: Exception | None = None
        self.done = threading.Event()
        self.finished_at = 0.0

    def token(self, token: GeneratedToken) -> None:
        self.tokens.append(token)

    def finish(self, summary: CompletionSummary) -> None:
        self.summary, self.finished_at = summary, time.monotonic()
        self.done.set()

    def fail(self, error: Exception) -> None:
        self.error, self.finished_at = error, time.monotonic()
        self.done.set()

    def wait(self) -> CompletionSummary:
        assert self.done.wait(60), "the sequence never ended"
        assert self.summary is not None, self.error
        return self.summary


@pytest.fixture(scope="module", params=["gpt2", "llama"])
def loaded(request: pytest.FixtureRequest, tiny_models: dict[str, Path], tmp_path_factory: pytest.TempPathFactory) -> tuple[Any, Any]:
    folder = tiny_models["text-generation"] if request.param == "gpt2" else build_llama(tmp_path_factory.mktemp("llama"))
    model = AutoModelForCausalLM.from_pretrained(folder).eval()
    return model, AutoTokenizer.from_pretrained(folder)


@pytest.fixture
def engine(loaded: tuple[Any, Any]) -> Iterator[GenerationEngine]:
    model, tokenizer = loaded
    running = GenerationEngine(model, tokenizer, max_batch_size=4, max_batch_tokens=64)
    yield running
    running.close()


def reference(model: Any, tokenizer: Any, prompt: str | list[dict[str, Any]], max_new_tokens: int) -> list[int]:
    ids = encode_prompt(tokenizer, prompt)
    with torch.inference_mode():
        out = model.generate(
            torch.tensor([ids]), attention_mask=torch.ones(1, len(ids), dtype=torch.long), do_sample=False,
            max_new_tokens=max_new_tokens, eos_token_id=tiny_models.SEP_ID, pad_token_id=tiny_models.PAD_ID,
        )  # fmt: skip
    return [int(token) for token in out[0, len(ids):]]


def greedy(max_new_tokens: int, **extra: Any) -> Sampling:
    return Sampling(max_new_tokens=max_new_tokens, max_new_tokens_given=True, **extra)


def test_greedy_equals_generate_alone_with_staggered_arrival(engine: GenerationEngine, loaded: tuple[Any, Any]) -> None:
    model, tokenizer = loaded
    sizes: list[int] = []
    engine.on_change = lambda stats: sizes.append(stats.batch_size)
    listeners = [Collect() for _ in PROMPTS]
    for i in (3, 1):  # two long ones start; the rest arrive while they decode, more than the batch holds
        engine.submit(PROMPTS[i], greedy(6 + 5 * i), listeners[i])
    while len(listeners[1].tokens) < 2 and not listeners[1].done.is_set():
        time.sleep(0.001)
    for i in (0, 2, 4):
        engine.submit(PROMPTS[i], greedy(6 + 5 * i), listeners[i])
    for i, (prompt, listener) in enumerate(zip(PROMPTS, listeners, strict=True)):
        summary = listener.wait()
        assert [token.id for token in listener.tokens] == reference(model, tokenizer, prompt, 6 + 5 * i), prompt
        assert summary.generated_tokens == len(listener.tokens)
        assert summary.generated_text == "".join(token.text for token in listener.tokens)
        assert summary.prompt_tokens == len(encode_prompt(tokenizer, prompt))
    assert wait_idle(engine)
    assert max(sizes) == 4  # they ran together, up to the batch's limit (the fifth waited)
    assert engine.stats().generated_tokens == sum(len(listener.tokens) for listener in listeners)


def test_a_short_request_after_a_long_one_finishes_first(engine: GenerationEngine) -> None:
    long, short = Collect(), Collect()
    engine.submit(PROMPTS[1], greedy(120), long)
    while not long.tokens and not long.done.is_set():
        time.sleep(0.001)
    engine.submit(PROMPTS[0], greedy(3), short)
    short.wait()
    assert not long.done.is_set()  # still generating: the short one did not wait for it
    long.wait()
    assert short.finished_at < long.finished_at


def test_cancel_frees_the_sequence_and_the_others_go_on(engine: GenerationEngine) -> None:
    doomed, other = Collect(), Collect()
    sequence = engine.submit(PROMPTS[1], greedy(200), doomed)
    engine.submit(PROMPTS[3], greedy(40), other)
    while len(doomed.tokens) < 3 and not doomed.done.is_set():
        time.sleep(0.001)
    engine.cancel(sequence)
    other.wait()
    assert wait_idle(engine)
    assert not doomed.done.is_set() and len(doomed.tokens) < 200  # no answer after a cancel
    assert engine.stats().running == 0


def test_stop_sequences_end_the_generation_without_their_text(engine: GenerationEngine) -> None:
    free = Collect()
    engine.submit(PROMPTS[3], greedy(20), free)
    text = free.wait().generated_text
    assert len(text) > 8
    stop = text[4:7]
    stopped = Collect()
    engine.submit(PROMPTS[3], greedy(20, stop=(stop, "never seen")), stopped)
    summary = stopped.wait()
    assert summary.finish_reason == "stop_sequence"
    assert summary.generated_text == text[:text.index(stop)]
    assert "".join(token.text for token in stopped.tokens) == summary.generated_text


def test_a_seed_gives_the_same_text_whatever_else_runs(engine: GenerationEngine) -> None:
    sampling = Sampling(max_new_tokens=12, max_new_tokens_given=True, do_sample=True, seed=42, top_k=50, top_p=0.9, temperature=1.5)
    alone = Collect()
    engine.submit(PROMPTS[0], sampling, alone)
    first = alone.wait()
    crowd = [Collect() for _ in range(3)]
    again = Collect()
    for i, listener in enumerate(crowd):
        engine.submit(PROMPTS[i + 1], greedy(10), listener)
    engine.submit(PROMPTS[0], sampling, again)
    assert again.wait().generated_text == first.generated_text and first.seed == 42
    other = Collect()
    engine.submit(PROMPTS[0], Sampling(max_new_tokens=12, max_new_tokens_given=True, do_sample=True, seed=7, temperature=1.5), other)
    assert [t.id for t in other.tokens] != [t.id for t in alone.tokens] or other.wait().seed == 7
    unseeded = Collect()
    engine.submit(PROMPTS[0], Sampling(max_new_tokens=2, do_sample=True), unseeded)
    assert unseeded.wait().seed is not None  # reported, so the text can be had again


def test_details_and_prompt_details(engine: GenerationEngine, loaded: tuple[Any, Any]) -> None:
    listener = Collect()
    engine.submit(PROMPTS[3], greedy(4, details=True, decoder_input_details=True, return_full_text=True), listener)
    summary = listener.wait()
    assert summary.tokens is not None and [t.id for t in summary.tokens] == [t.id for t in listener.tokens]
    assert all(t.logprob <= 0.0 for t in summary.tokens)
    assert summary.prefill is not None and len(summary.prefill) == summary.prompt_tokens
    assert summary.prefill[0].logprob is None and all(p.logprob is not None for p in summary.prefill[1:])
    assert summary.generated_text.startswith(PROMPTS[3])


def test_a_sequence_whose_sampling_fails_ends_alone(engine: GenerationEngine, monkeypatch: pytest.MonkeyPatch) -> None:
    real = engine_module.sample_row

    def broken(logits: torch.Tensor, sampling: Sampling, generator: torch.Generator | None) -> tuple[int, float]:
        if sampling.seed == 13:
            raise RuntimeError("this sequence's sampling broke")
        return real(logits, sampling, generator)

    monkeypatch.setattr(engine_module, "sample_row", broken)
    failing, fine = Collect(), Collect()
    engine.submit(PROMPTS[3], greedy(30), fine)
    engine.submit(PROMPTS[0], Sampling(max_new_tokens=5, do_sample=True, seed=13), failing)
    assert failing.done.wait(30) and isinstance(failing.error, ModelError)
    assert "sampling broke" in str(failing.error)
    assert fine.wait().generated_tokens == 30


def test_a_failed_step_fails_its_sequences_and_the_engine_serves_on(engine: GenerationEngine, monkeypatch: pytest.MonkeyPatch) -> None:
    model = engine.model
    calls = {"n": 0}
    real_forward = model.forward

    def flaky(*args: Any, **kwargs: Any) -> Any:
        calls["n"] += 1
        if calls["n"] == 3:
            raise RuntimeError("the device fell over")
        return real_forward(*args, **kwargs)

    monkeypatch.setattr(model, "forward", flaky)
    a, b = Collect(), Collect()
    engine.submit(PROMPTS[0], greedy(30), a)
    engine.submit(PROMPTS[2], greedy(30), b)
    assert a.done.wait(30) and b.done.wait(30)
    assert isinstance(a.error, ModelError) and isinstance(b.error, ModelError)
    after = Collect()
    engine.submit(PROMPTS[0], greedy(3), after)
    assert after.wait().generated_tokens == 3


def test_a_prompt_past_the_model_positions_is_refused_alone(engine: GenerationEngine) -> None:
    listener = Collect()
    engine.submit("word " * 300, greedy(5), listener)
    assert listener.done.wait(30) and isinstance(listener.error, GenerationLimitExceeded)
    truncated = Collect()
    engine.submit("word " * 300, greedy(5, truncate=20), truncated)
    assert truncated.wait().prompt_tokens == 20
    default = Collect()  # no max_new_tokens given: the default shrinks to the room left
    engine.submit("word " * 250, Sampling(max_new_tokens=256), default)
    assert default.wait().finish_reason in ("length", "eos_token")


def test_chat_messages_use_the_template(loaded: tuple[Any, Any], engine: GenerationEngine) -> None:
    model, tokenizer = loaded
    messages = [{"role": "user", "content": "hello there"}]
    listener = Collect()
    engine.submit(messages, greedy(5), listener)
    if not tokenizer.chat_template:
        assert listener.done.wait(30) and isinstance(listener.error, ValidationError)
        assert "no chat template" in str(listener.error)
        return
    listener.wait()
    assert encode_prompt(tokenizer, messages)[-1] != tiny_models.SEP_ID
    assert [t.id for t in listener.tokens] == reference(model, tokenizer, messages, 5)


# --- parameters and text, no model ------------------------------------------------------------

def test_parameters_are_checked() -> None:
    limits = GenerationLimits(default_max_new_tokens=16, max_new_tokens_limit=32)
    assert check_sampling({}, limits).max_new_tokens == 16
    assert check_sampling({"stop_sequence": "x", "stop": ["y"]}, limits).stop == ("y", "x")
    assert check_sampling({"temperature": 0.0, "do_sample": True}, limits).greedy
    with pytest.raises(GenerationLimitExceeded, match=r"limit of 32.*generation.max_new_tokens_limit") as caught:
        check_sampling({"max_new_tokens": 33}, limits)
    assert caught.value.status == 422
    for parameters, name in [
        ({"temperature": -1}, "temperature"), ({"top_p": 0}, "top_p"), ({"top_p": 1.5}, "top_p"),
        ({"repetition_penalty": 0}, "repetition_penalty"), ({"bogus": 1, "other": 2}, "bogus"),
        ({"seed": "x"}, "seed"), ({"stop": [1]}, "stop"), ({"watermark": True}, "watermark"),
    ]:  # fmt: skip
        with pytest.raises(ValidationError, match=name):
            check_sampling(parameters, limits)


def test_incremental_decoding_joins_word_pieces() -> None:
    tokenizer = tiny_models.tokenizer()
    prompt = tokenizer("I am")["input_ids"][:-1]
    decoder = IncrementalDecoder(tokenizer, prompt)
    pieces = [decoder.add(token) for token in tokenizer.convert_tokens_to_ids(["play", "##ing", "football", "##s"])]
    assert pieces == [" play", "ing", " football", "s"]


def test_stop_matcher_holds_back_a_possible_stop() -> None:
    matcher = StopMatcher(("\nUser:",))
    assert matcher.feed("Hello") == ("Hello", False)
    assert matcher.feed(" there\n") == (" there", False)  # "\n" may begin the stop
    assert matcher.feed("Us") == ("", False)
    assert matcher.feed("ual") == ("\nUsual", False)
    assert matcher.feed("\nUser: hi") == ("", True)
    late = StopMatcher(("END",))
    assert late.feed("xE") == ("x", False) and late.flush() == "E"


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_the_engine_runs_on_cuda(tiny_models: dict[str, Path], dtype: torch.dtype) -> None:
    folder = tiny_models["text-generation"]
    model = AutoModelForCausalLM.from_pretrained(folder, dtype=dtype).to("cuda").eval()
    tokenizer = AutoTokenizer.from_pretrained(folder)
    engine = GenerationEngine(model, tokenizer, max_batch_size=128, max_batch_tokens=65536)
    try:
        listeners = [Collect() for _ in PROMPTS]
        for prompt, listener in zip(PROMPTS, listeners, strict=True):
            engine.submit(prompt, greedy(8), listener)
        sampled = [Collect(), Collect()]
        for listener in sampled:
            engine.submit(PROMPTS[0], Sampling(max_new_tokens=8, do_sample=True, seed=5), listener)
        for listener in listeners:
            assert listener.wait().generated_tokens >= 1
        assert sampled[0].wait().generated_text == sampled[1].wait().generated_text
    finally:
        engine.close()
