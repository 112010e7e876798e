"""Summarization, translation and text2text-generation on ``AutoModelForSeq2SeqLM``.

transformers 5 removed these pipelines; what they did is small: prepend the task's
prefix from ``config.task_specific_params`` (T5's "summarize: "), use that entry's
generation settings as defaults, tokenise with truncation, ``generate``, decode.
Translation also picks the ``translation_{src}_to_{tgt}`` entry and, for multilingual
tokenizers (mBART, NLLB, M2M100), sets ``src_lang`` and forces ``tgt_lang`` as the first
generated token.

Answers are ``[{"summary_text"}]``, ``[{"translation_text"}]`` or ``[{"generated_text"}]``
per input; with ``num_return_sequences`` > 1 each input gets a list of them.
"""

from __future__ import annotations

from typing import Any

import torch

from hubserve.errors import ValidationError
from hubserve.models import requests as rq
from hubserve.models.generation import GENERATION_PARAMETERS, check_generation

OUTPUT_KEYS = {
    "summarization": "summary_text",
    "translation": "translation_text",
    "text2text-generation": "generated_text",
}
SEQ2SEQ_PARAMETERS: dict[str, rq.Check] = {
    **GENERATION_PARAMETERS,
    "truncation": rq.truncation,
    "clean_up_tokenization_spaces": rq.boolean,
}
TRANSLATION_PARAMETERS: dict[str, rq.Check] = {**SEQ2SEQ_PARAMETERS, "src_lang": rq.string, "tgt_lang": rq.string}
_HUGE = 100_000


class Seq2SeqGenerator:
    """Predictor for the encoder-decoder generation tasks."""

    def __init__(self, model: Any, tokenizer: Any, *, task: str) -> None:
        self.model = model
        self.tokenizer = tokenizer
        self.task = task
        self.output_key = OUTPUT_KEYS[task]
        self.allowed = TRANSLATION_PARAMETERS if task == "translation" else SEQ2SEQ_PARAMETERS
        specific = getattr(model.config, "task_specific_params", None)
        self.task_params: dict[str, dict[str, Any]] = specific if isinstance(specific, dict) else {}
        max_len = tokenizer.model_max_length
        if not max_len or max_len > _HUGE:
            max_len = getattr(model.config, "max_position_embeddings", None) or 512
        self.max_input_len = int(max_len)

    def __call__(self, data: Any) -> list[Any]:
        texts, as_list, settings = self.parse(data)
        grouped = self.generate(texts, settings)
        if not as_list:
            return grouped[0]
        return [group[0] for group in grouped] if len(grouped[0]) == 1 else grouped

    def parse(self, data: Any) -> tuple[list[str], bool, dict[str, Any]]:
        """Check one body: ``(prefixed texts, whether a list was sent, settings)``, or ValidationError.

        ``settings`` (plain JSON: truncation, clean_up, src_lang, generation) is all ``generate``
        needs; bodies with equal settings can be generated together.
        """
        inputs, parameters = rq.split_body(data, self.task)
        params = rq.check_parameters(rq.lift_generate_parameters(parameters), self.allowed, self.task)
        texts, as_list = rq.texts(inputs, self.task)
        truncation = params.pop("truncation", True)
        clean_up = params.pop("clean_up_tokenization_spaces", False)
        src_lang, tgt_lang = params.pop("src_lang", None), params.pop("tgt_lang", None)

        defaults = dict(self._task_entry(src_lang, tgt_lang))
        prefix = str(defaults.pop("prefix", "") or "")
        generation = {k: v for k, v in defaults.items() if k in GENERATION_PARAMETERS}
        generation.update(params)
        if tgt_lang is not None and "forced_bos_token_id" not in params:
            token_id = self._language_token(tgt_lang)
            if token_id is not None:
                generation["forced_bos_token_id"] = token_id
        check_generation(self.model.generation_config, generation)
        settings = {"truncation": truncation, "clean_up": clean_up, "src_lang": src_lang, "generation": generation}
        return [prefix + text for text in texts], as_list, settings

    def generate(self, texts: list[str], settings: dict[str, Any]) -> list[list[dict[str, str]]]:
        """Generate for ``texts`` in one batch: per text, ``num_return_sequences`` answers."""
        encoded = self._encode(texts, settings["truncation"], settings["src_lang"])
        with torch.inference_mode():
            output = self.model.generate(**encoded, **settings["generation"])
        decoded = self.tokenizer.batch_decode(
            output, skip_special_tokens=True, clean_up_tokenization_spaces=settings["clean_up"]
        )
        per_input = len(decoded) // len(texts)
        return [
            [{self.output_key: text} for text in decoded[i * per_input:(i + 1) * per_input]]
            for i in range(len(texts))
        ]

    def _encode(self, texts: list[str], truncation: bool, src_lang: str | None) -> dict[str, Any]:
        previous = getattr(self.tokenizer, "src_lang", None)
        if src_lang is not None and hasattr(self.tokenizer, "src_lang"):
            self.tokenizer.src_lang = src_lang
        try:
            encoded = self.tokenizer(
                texts,
                truncation=truncation,
                max_length=self.max_input_len if truncation else None,
                padding=True,
                return_tensors="pt",
            )
        finally:
            if src_lang is not None and hasattr(self.tokenizer, "src_lang"):
                self.tokenizer.src_lang = previous
        encoded.pop("token_type_ids", None)
        return {name: tensor.to(self.model.device) for name, tensor in encoded.items()}

    def _task_entry(self, src_lang: str | None, tgt_lang: str | None) -> dict[str, Any]:
        """The ``task_specific_params`` entry for this task (and language pair), if any."""
        if self.task == "summarization":
            return self.task_params.get("summarization", {})
        if self.task != "translation":
            return {}
        if src_lang and tgt_lang:
            entry = self.task_params.get(f"translation_{src_lang}_to_{tgt_lang}")
            if entry is not None:
                return entry
        translations = [key for key in self.task_params if key.startswith("translation")]
        return self.task_params[translations[0]] if len(translations) == 1 else {}

    def _language_token(self, language: str) -> int | None:
        """Id of a language-code token (M2M100 ``__fr__``, mBART ``fr_XX``, NLLB ``fra_Latn``).

        Only special or added tokens count: a monolingual vocabulary that happens to hold
        the word "fr" must not force it as the first generated token.
        """
        get_lang_id = getattr(self.tokenizer, "get_lang_id", None)
        if callable(get_lang_id):
            try:
                return int(get_lang_id(language))
            except (KeyError, ValueError):
                raise ValidationError(f"unknown tgt_lang {language!r} for this model's tokenizer") from None
        special = set(self.tokenizer.all_special_tokens) | set(self.tokenizer.get_added_vocab())
        if language in special:
            return int(self.tokenizer.convert_tokens_to_ids(language))
        return None
