"""Streaming the encoder-decoder tasks (summarization, translation, text2text-generation).

These are not continuously batched: a request that asks for the neutral answers runs alone in the
replica's inference thread (the batcher's, as custom-code streams do), one ``generate`` call for
its one prompt, and each token goes out as it is chosen. Toolkit requests (no neutral accept) keep
running batched through ``models.seq2seq`` as before.

Each step's token is taken in a ``StoppingCriteria``, which ``generate`` calls right after choosing
it: there it is decoded incrementally, checked against the stop sequences and handed on, and the
criteria stops the generation at a stop sequence or when the client left. A ``LogitsProcessor``
placed last keeps the step's log-probabilities for it. ``seed`` seeds torch's generator for the
call, so the same seed gives the same text.
"""

from __future__ import annotations

import secrets
from collections.abc import Callable
from typing import Any

import torch

from hubserve.models.seq2seq import Seq2SeqGenerator
from hubserve.models.textgen.detok import IncrementalDecoder, StopMatcher
from hubserve.models.textgen.params import Sampling
from hubserve.types import CompletionSummary, FinishReason, GeneratedToken


def generate_stream(
    generator: Seq2SeqGenerator, prompt: str, sampling: Sampling, on_token: Callable[[GeneratedToken], None],
    stopped: Callable[[], bool],
) -> CompletionSummary:  # fmt: skip
    """Generate for one prompt, calling ``on_token`` for each token; the summary when it ends."""
    from transformers import LogitsProcessor, LogitsProcessorList, StoppingCriteria, StoppingCriteriaList

    texts, _, settings = generator.parse({"inputs": prompt, "parameters": {}})
    encoded = generator._encode(texts, settings["truncation"], settings["src_lang"])
    tokenizer = generator.tokenizer
    model = generator.model
    eos = model.generation_config.eos_token_id
    eos_ids = set(eos if isinstance(eos, list) else [eos] if eos is not None else [])
    special = set(tokenizer.all_special_ids) | eos_ids
    decoder = IncrementalDecoder(tokenizer, [])
    stops = StopMatcher(sampling.stop)
    state: dict[str, Any] = {"logprobs": None, "reason": None}
    tokens: list[GeneratedToken] = []

    class KeepLogprobs(LogitsProcessor):
        def __call__(self, input_ids: torch.LongTensor, scores: torch.FloatTensor) -> torch.FloatTensor:
            state["logprobs"] = torch.log_softmax(scores.float(), dim=-1)
            return scores

    class TakeToken(StoppingCriteria):
        def __call__(self, input_ids: torch.LongTensor, scores: torch.FloatTensor, **kwargs: Any) -> torch.BoolTensor:
            token_id = int(input_ids[0, -1])
            logprobs = state["logprobs"]
            logprob = float(logprobs[0, token_id]) if logprobs is not None else 0.0
            is_special = token_id in special
            text, stop = stops.feed("" if is_special else decoder.add(token_id))
            reason: FinishReason | None = (
                "eos_token" if token_id in eos_ids else "stop_sequence" if stop
                else "length" if len(tokens) + 1 >= sampling.max_new_tokens else None
            )  # fmt: skip
            if reason is not None and reason != "stop_sequence":
                text += stops.flush()
            token = GeneratedToken(token_id, text, logprob, is_special)
            tokens.append(token)
            on_token(token)
            state["reason"] = reason
            done = stop or stopped()
            return torch.full((input_ids.shape[0],), done, dtype=torch.bool, device=input_ids.device)  # type: ignore[return-value]

    generation = dict(settings["generation"])
    generation.update(max_new_tokens=sampling.max_new_tokens, do_sample=not sampling.greedy, num_beams=1, num_return_sequences=1)
    if not sampling.greedy:
        generation.update(temperature=sampling.temperature, top_k=sampling.top_k, top_p=sampling.top_p)
    if sampling.repetition_penalty != 1.0:
        generation["repetition_penalty"] = sampling.repetition_penalty
    seed = None if sampling.greedy else (sampling.seed if sampling.seed is not None else secrets.randbits(63))
    devices = [model.device] if model.device.type == "cuda" else []
    with torch.inference_mode(), torch.random.fork_rng(devices=devices):
        if seed is not None:
            torch.manual_seed(seed)
        model.generate(
            **encoded, **generation, logits_processor=LogitsProcessorList([KeepLogprobs()]),
            stopping_criteria=StoppingCriteriaList([TakeToken()]),
        )  # fmt: skip
    reason: FinishReason = state["reason"] or "length"
    return CompletionSummary(
        generated_text="".join(token.text for token in tokens), finish_reason=reason, generated_tokens=len(tokens),
        prompt_tokens=int(encoded["input_ids"].shape[1]), seed=seed, tokens=tokens if sampling.details else None,
    )  # fmt: skip
