"""Extractive question answering on ``AutoModelForQuestionAnswering``.

transformers 5 removed the question-answering pipeline, so hubserve decodes spans itself,
the way that pipeline did: long contexts are split into overlapping windows
(``max_seq_len``, ``doc_stride``); in each window the start and end logits are softmaxed
over the context tokens (plus CLS, whose score is the "no answer" score); the best spans
with ``start <= end < start + max_answer_len`` are mapped back to character offsets in
the context through the fast tokenizer's offset mapping.

Answer: ``{"score", "start", "end", "answer"}`` for ``top_k`` 1, else a list of them;
a list of ``{question, context}`` pairs is answered with a list.
"""

from __future__ import annotations

import inspect
from typing import Any

import torch

from hubserve.errors import ValidationError
from hubserve.models import requests as rq

QA_PARAMETERS: dict[str, rq.Check] = {
    "top_k": rq.integer(1, 100),
    "max_answer_len": rq.integer(1),
    "handle_impossible_answer": rq.boolean,
    "max_seq_len": rq.integer(16),
    "doc_stride": rq.integer(0),
}
_EXAMPLE = '{"inputs": {"question": "Where do I live?", "context": "My name is Wolfgang and I live in Berlin."}}'

Answer = dict[str, Any]


class QuestionAnswering:
    """Predictor for question-answering; needs a fast tokenizer for offset mapping."""

    task = "question-answering"

    def __init__(self, model: Any, tokenizer: Any) -> None:
        if not getattr(tokenizer, "is_fast", False):
            raise ValueError("question-answering needs a fast tokenizer (tokenizer.json) for character offsets")
        self.model = model
        self.tokenizer = tokenizer
        self.question_first = tokenizer.padding_side == "right"
        accepted = inspect.signature(model.forward).parameters
        self.input_names = [n for n in ("input_ids", "attention_mask", "token_type_ids") if n in accepted]
        limit = tokenizer.model_max_length if tokenizer.model_max_length < 100_000 else 512
        self.default_max_seq_len = min(384, limit)

    def __call__(self, data: Any) -> Answer | list[Answer] | list[Answer | list[Answer]]:
        pairs, as_list, params = self.parse(data)
        results = self.answer(pairs, params)
        return results if as_list else results[0]

    def parse(self, data: Any) -> tuple[list[tuple[str, str]], bool, dict[str, Any]]:
        """Check one body: ``(question/context pairs, whether a list was sent, parameters)``, or ValidationError."""
        if isinstance(data, dict) and "inputs" not in data and {"question", "context"} <= set(data):
            data = {"inputs": {"question": data["question"], "context": data["context"]},
                    "parameters": data.get("parameters")}
        inputs, parameters = rq.split_body(data, self.task)
        params = rq.check_parameters(parameters, QA_PARAMETERS, self.task)
        pairs, as_list = _pairs(inputs)
        return pairs, as_list, params

    def answer(self, pairs: list[tuple[str, str]], params: dict[str, Any]) -> list[Answer | list[Answer]]:
        """One answer per pair (a list of ``top_k`` answers when ``top_k`` > 1), in one forward pass."""
        answers = self._answer(pairs, **params)
        return [found[0] if params.get("top_k", 1) == 1 else found for found in answers]

    def _answer(
        self,
        pairs: list[tuple[str, str]],
        top_k: int = 1,
        max_answer_len: int = 15,
        handle_impossible_answer: bool = False,
        max_seq_len: int | None = None,
        doc_stride: int | None = None,
    ) -> list[list[Answer]]:
        max_len = max_seq_len or self.default_max_seq_len
        stride = min(doc_stride if doc_stride is not None else 128, max_len // 2)
        questions = [q for q, _ in pairs]
        contexts = [c for _, c in pairs]
        first, second = (questions, contexts) if self.question_first else (contexts, questions)
        try:
            encoded = self.tokenizer(
                first,
                second,
                truncation="only_second" if self.question_first else "only_first",
                max_length=max_len,
                stride=stride,
                return_overflowing_tokens=True,
                return_offsets_mapping=True,
                padding="longest",
                return_tensors="pt",
            )
        except Exception as exc:  # the tokenizer refuses questions longer than the window
            raise ValidationError(
                f"cannot fit the question into a {max_len}-token window ({exc}); "
                "shorten the question or raise parameters.max_seq_len"
            ) from None
        device = self.model.device
        with torch.inference_mode():
            output = self.model(**{name: encoded[name].to(device) for name in self.input_names})
        start_logits = output.start_logits.float().cpu()
        end_logits = output.end_logits.float().cpu()

        context_id = 1 if self.question_first else 0
        candidates: list[dict[tuple[int, int], float]] = [{} for _ in pairs]
        null_scores = [1.0 for _ in pairs]
        for window, sample in enumerate(encoded["overflow_to_sample_mapping"].tolist()):
            sequence_ids = encoded.sequence_ids(window)
            in_context = torch.tensor([sid == context_id for sid in sequence_ids])
            keep = in_context.clone()
            cls_positions = (encoded["input_ids"][window] == self.tokenizer.cls_token_id).nonzero()
            cls = int(cls_positions[0]) if len(cls_positions) else None
            if cls is not None:
                keep[cls] = True
            start = _masked_softmax(start_logits[window], keep)
            end = _masked_softmax(end_logits[window], keep)
            if cls is not None:
                null_scores[sample] = min(null_scores[sample], float(start[cls] * end[cls]))
            offsets = encoded["offset_mapping"][window].tolist()
            for score, s, e in _best_spans(start, end, in_context, max_answer_len, top_k):
                span = (int(offsets[s][0]), int(offsets[e][1]))
                candidates[sample][span] = max(score, candidates[sample].get(span, 0.0))

        results: list[list[Answer]] = []
        for (_, context), spans, null_score in zip(pairs, candidates, null_scores, strict=True):
            found: list[Answer] = [
                {"score": score, "start": s, "end": e, "answer": context[s:e]}
                for (s, e), score in spans.items()
            ]
            if handle_impossible_answer or not found:
                found.append({"score": null_score if handle_impossible_answer else 0.0,
                              "start": 0, "end": 0, "answer": ""})
            found.sort(key=lambda answer: answer["score"], reverse=True)
            results.append(found[:top_k])
        return results


def _masked_softmax(logits: torch.Tensor, keep: torch.Tensor) -> torch.Tensor:
    return torch.softmax(logits.masked_fill(~keep, -10000.0), dim=-1)


def _best_spans(
    start: torch.Tensor, end: torch.Tensor, in_context: torch.Tensor, max_answer_len: int, top_k: int
) -> list[tuple[float, int, int]]:
    """The ``top_k`` best (score, start token, end token) with both ends inside the context."""
    start = start * in_context
    end = end * in_context
    scores = torch.triu(start[:, None] * end[None, :])
    scores = scores - torch.triu(scores, diagonal=max_answer_len)  # end < start + max_answer_len
    flat = scores.flatten()
    count = min(top_k, int((flat > 0).sum()))
    if count == 0:
        return []
    values, indices = torch.topk(flat, count)
    width = scores.shape[1]
    return [(float(v), int(i) // width, int(i) % width) for v, i in zip(values, indices, strict=True)]


def _pairs(inputs: Any) -> tuple[list[tuple[str, str]], bool]:
    def pair(item: Any) -> tuple[str, str]:
        if not isinstance(item, dict) or not isinstance(item.get("question"), str) or not isinstance(
            item.get("context"), str
        ):
            raise ValidationError(
                f"question-answering needs 'inputs' with a string question and context, e.g. {_EXAMPLE}"
            )
        if not item["question"].strip() or not item["context"].strip():
            raise ValidationError("question-answering needs a non-empty question and a non-empty context")
        return item["question"], item["context"]

    if isinstance(inputs, list):
        if not inputs:
            raise ValidationError(f"'inputs' is an empty list; send at least one question, e.g. {_EXAMPLE}")
        return [pair(item) for item in inputs], True
    return [pair(inputs)], False
