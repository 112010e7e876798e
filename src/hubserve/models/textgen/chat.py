"""Prompts from requests: a string as it is, chat messages through the tokenizer's chat template."""

from __future__ import annotations

from typing import Any

from hubserve.errors import ValidationError


def is_chat(value: Any) -> bool:
    """Chat messages: a non-empty list of ``{"role": str, "content": ...}`` objects."""
    return (
        isinstance(value, list)
        and bool(value)
        and all(isinstance(m, dict) and isinstance(m.get("role"), str) and "content" in m for m in value)
    )


def require_template(tokenizer: Any) -> None:
    """ValidationError (400) when the model cannot take chat messages."""
    if not getattr(tokenizer, "chat_template", None):
        raise ValidationError(
            "this model's tokenizer has no chat template, so it cannot take chat messages; "
            "send 'inputs' as a prompt string (or use /v1/completions rather than /v1/chat/completions)"
        )


def render(tokenizer: Any, messages: list[dict[str, Any]]) -> str:
    """The prompt text the model expects for ``messages``, ending where the assistant's reply begins."""
    require_template(tokenizer)
    try:
        text = tokenizer.apply_chat_template(messages, add_generation_prompt=True, tokenize=False)
    except Exception as exc:  # jinja's own errors: the template refused these messages
        raise ValidationError(f"the chat template cannot render these messages: {exc}") from None
    return str(text)


def encode_prompt(tokenizer: Any, prompt: str | list[dict[str, Any]]) -> list[int]:
    """Token ids of a prompt. A template already holds its special tokens; a string gets the ones
    its tokenizer adds (Llama's BOS, BERT's [CLS]) but never a trailing end-of-sequence token (BERT's
    [SEP]), after which a model's most likely next token is another end and nothing is generated."""
    if isinstance(prompt, list):
        ids: list[int] = list(tokenizer(render(tokenizer, prompt), add_special_tokens=False)["input_ids"])
        return ids
    ids = list(tokenizer(prompt)["input_ids"])
    ends = {tokenizer.eos_token_id, getattr(tokenizer, "sep_token_id", None)} - {None}
    if len(ids) > 1 and ids[-1] in ends:
        ids.pop()
    return ids
