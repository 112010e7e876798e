"""Choosing each sequence's next token from the step's logits.

Greedy rows take the arg-max of the whole batch at once; rows with a repetition penalty or
sampling are done one by one, each sampling with its own ``torch.Generator`` so that a seed gives
the same text whatever else runs in the batch. The log-probability reported is the chosen
token's under the distribution it was chosen from (after penalty and temperature).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import torch

if TYPE_CHECKING:
    from hubserve.models.textgen.params import Sampling


def new_generator(seed: int, device: torch.device) -> torch.Generator:
    generator = torch.Generator(device=device)
    generator.manual_seed(seed)
    return generator


def penalise(logits: torch.Tensor, seen: list[int], penalty: float) -> torch.Tensor:
    """CTRL's repetition penalty (as transformers applies it) on one row."""
    index = torch.tensor(sorted(set(seen)), device=logits.device, dtype=torch.long)
    scores = logits.index_select(0, index)
    scores = torch.where(scores < 0, scores * penalty, scores / penalty)
    return logits.index_copy(0, index, scores)


def sample_row(logits: torch.Tensor, sampling: Sampling, generator: torch.Generator | None) -> tuple[int, float]:
    """``(token id, its log-probability)`` for one row of float logits."""
    if sampling.greedy or generator is None:
        logprobs = torch.log_softmax(logits, dim=-1)
        token = int(torch.argmax(logits))
        return token, float(logprobs[token])
    logits = logits / sampling.temperature
    logprobs = torch.log_softmax(logits, dim=-1)
    filtered = logits
    if 0 < sampling.top_k < filtered.shape[-1]:
        kth = torch.topk(filtered, sampling.top_k).values[-1]
        filtered = filtered.masked_fill(filtered < kth, float("-inf"))
    if sampling.top_p < 1.0:
        ordered, order = torch.sort(filtered, descending=True)
        cumulative = torch.softmax(ordered, dim=-1).cumsum(-1)
        drop = cumulative - torch.softmax(ordered, dim=-1) >= sampling.top_p  # keep the first token always
        filtered = filtered.index_fill(0, order[drop], float("-inf"))
    probs = torch.softmax(filtered, dim=-1)
    token = int(torch.multinomial(probs, 1, generator=generator))
    return token, float(logprobs[token])
