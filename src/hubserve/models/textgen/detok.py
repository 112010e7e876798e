"""Incremental detokenisation: each new token's text as it is generated, right in context.

Decoding one token alone breaks word pieces (``##ing``), leading spaces of SentencePiece and
byte-level BPE, and multi-byte characters split over tokens. This is text-generation-inference's
method: decode a short window of the tokens before the new one with and without it, and emit the
difference once it no longer ends in an incomplete character (U+FFFD); until then the token's
text is empty and the next one carries it.
"""

from __future__ import annotations

from typing import Any

_WINDOW = 5  # tokens of context before the first new one


class IncrementalDecoder:
    """Decodes one sequence's generated tokens, given its prompt ids for context."""

    __slots__ = ("_ids", "_prefix_offset", "_read_offset", "_tokenizer")

    def __init__(self, tokenizer: Any, prompt_ids: list[int]) -> None:
        self._tokenizer = tokenizer
        self._ids = list(prompt_ids[-_WINDOW:])
        self._prefix_offset = 0
        self._read_offset = len(self._ids)

    def add(self, token_id: int) -> str:
        """The text ``token_id`` adds to the sequence (maybe empty: a character is still incomplete)."""
        self._ids.append(token_id)
        decode = self._tokenizer.decode
        prefix = decode(self._ids[self._prefix_offset:self._read_offset], skip_special_tokens=True)
        text = decode(self._ids[self._prefix_offset:], skip_special_tokens=True)
        if len(text) > len(prefix) and not text.endswith("\ufffd"):
            new = str(text[len(prefix):])
            self._prefix_offset = self._read_offset
            self._read_offset = len(self._ids)
            if self._prefix_offset > 64:  # keep the window short: decoding cost stays constant
                drop = self._prefix_offset
                self._ids = self._ids[drop:]
                self._prefix_offset -= drop
                self._read_offset -= drop
            return new
        return ""


class StopMatcher:
    """Holds back text that may be the start of a stop sequence; finds a stop when one is complete.

    Stop sequences are excluded from the answer, as OpenAI's API does: text that could begin a
    stop is withheld (its token's text is empty) until the next tokens show it is not one.
    """

    __slots__ = ("_held", "_longest", "_stops")

    def __init__(self, stops: tuple[str, ...]) -> None:
        self._stops = stops
        self._longest = max((len(stop) for stop in stops), default=0)
        self._held = ""

    def feed(self, text: str) -> tuple[str, bool]:
        """``(text to emit now, whether a stop sequence ended the generation)``."""
        if not self._stops:
            return text, False
        held = self._held + text
        found = [index for index in (held.find(stop) for stop in self._stops) if index >= 0]
        if found:
            self._held = ""
            return held[:min(found)], True
        keep = 0
        for size in range(min(len(held), self._longest - 1), 0, -1):
            tail = held[-size:]
            if any(stop.startswith(tail) for stop in self._stops):
                keep = size
                break
        self._held = held[len(held) - keep:] if keep else ""
        return held[:len(held) - keep], False

    def flush(self) -> str:
        """What was held back, when the generation ends for another reason."""
        held, self._held = self._held, ""
        return held
