"""The continuous-batching engine for causal language models, run in its own thread.

Sequences join the running batch at the next decoding step and leave it when they finish (an
end-of-sequence token, a stop sequence, ``max_new_tokens``) or are cancelled, so a long
generation never holds a short one behind it. Each step:

1. cancelled sequences leave (queued ones are dropped; running rows are evicted);
2. waiting sequences are admitted, oldest first, while the batch has room (``max_batch_size``
   sequences) and the step's token budget (``max_batch_tokens``: one token per running sequence
   plus the padded prompt tokens of the new ones) allows; the oldest is always admitted when there
   is room, so a prompt over the budget runs rather than starving;
3. the new sequences are prefilled together (left-padded, with an attention mask and explicit
   position ids), their first tokens chosen, and their KV caches merged into the running batch's;
4. one decoding step runs for the whole batch, and finished rows leave.

The running batch is one transformers ``DynamicCache`` whose rows are left-padded to a common
length; the attention mask marks the padding and ``position_ids`` count each row's real tokens,
so every row computes what it would alone. Merging pads both caches on the left to the longer
length and concatenates them along the batch; leaving ``index_select``s the remaining rows and
trims the columns that are padding in every row, so a sequence's cache is released when it ends.
(Layers are read as ``cache.layers[i].keys/values``: transformers 5's ``DynamicLayer``. Models
with sliding-window or recurrent caches are not supported by this engine.)

Failures: a sequence whose own token choice fails ends with a ModelError and the others go on;
a prefill that fails fails only the sequences being admitted; a decoding step that fails fails
every running sequence, and the engine serves on with an empty batch.
"""

from __future__ import annotations

import collections
import dataclasses
import secrets
import threading
import time
from collections.abc import Callable
from typing import Any, Protocol

import torch
import torch.nn.functional as F

from hubserve.errors import GenerationLimitExceeded, ModelError, ValidationError
from hubserve.models.textgen.chat import encode_prompt
from hubserve.models.textgen.detok import IncrementalDecoder, StopMatcher
from hubserve.models.textgen.params import Sampling
from hubserve.models.textgen.sampling import new_generator, penalise, sample_row
from hubserve.types import CompletionSummary, EngineStats, FinishReason, GeneratedToken, PrefillToken


class Listener(Protocol):
    """Where one sequence's tokens and end go; called in the engine's thread, must not block."""

    def token(self, token: GeneratedToken) -> None: ...

    def finish(self, summary: CompletionSummary) -> None: ...

    def fail(self, error: Exception) -> None: ...


@dataclasses.dataclass(eq=False)
class Sequence:
    """One prompt being generated; ``cancel`` may be called from any thread."""

    prompt: str | list[dict[str, Any]]
    sampling: Sampling
    listener: Listener
    cancelled: bool = False
    prompt_ids: list[int] = dataclasses.field(default_factory=list)
    ids: list[int] = dataclasses.field(default_factory=list)  # prompt and generated, for the repetition penalty
    max_new_tokens: int = 0
    generated: int = 0
    texts: list[str] = dataclasses.field(default_factory=list)
    tokens: list[GeneratedToken] = dataclasses.field(default_factory=list)
    prefill: list[PrefillToken] | None = None
    seed: int | None = None
    generator: torch.Generator | None = None
    decoder: IncrementalDecoder | None = None
    stops: StopMatcher | None = None

    def cancel(self) -> None:
        self.cancelled = True


class GenerationEngine:
    """Continuous batching over one causal LM; ``submit`` from any thread, answers through listeners."""

    def __init__(
        self, model: Any, tokenizer: Any, *, max_batch_size: int = 32, max_batch_tokens: int = 1280,
        on_change: Callable[[EngineStats], None] | None = None,
    ) -> None:  # fmt: skip
        self.model = model
        self.tokenizer = tokenizer
        self.max_batch_size = max(1, max_batch_size)
        self.max_batch_tokens = max(1, max_batch_tokens)
        self.on_change = on_change
        self.device = torch.device(getattr(model, "device", "cpu"))
        config = model.config
        self.max_positions: int | None = getattr(config, "max_position_embeddings", None) or getattr(config, "n_positions", None)
        eos = model.generation_config.eos_token_id if model.generation_config is not None else None
        if eos is None:
            eos = tokenizer.eos_token_id
        self.eos_ids: frozenset[int] = frozenset(eos if isinstance(eos, list) else [eos] if eos is not None else [])
        self.special_ids: frozenset[int] = frozenset(tokenizer.all_special_ids) | self.eos_ids
        pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else next(iter(self.eos_ids), 0)
        self.pad_id = int(pad)
        self._cond = threading.Condition()
        self._incoming: list[Sequence] = []
        self._waiting: collections.deque[Sequence] = collections.deque()
        self._closed = False
        # The running batch: rows in order, their cache, mask, real lengths and next input token.
        self._rows: list[Sequence] = []
        self._cache: Any = None
        self._mask: torch.Tensor | None = None
        self._lengths: torch.Tensor | None = None
        self._next: torch.Tensor | None = None
        self._batch_size = 0
        self._generated_total = 0
        self._thread = threading.Thread(target=self._loop, daemon=True, name="generation")
        self._thread.start()

    # --- any thread -----------------------------------------------------------------------

    def submit(self, prompt: str | list[dict[str, Any]], sampling: Sampling, listener: Listener) -> Sequence:
        """Queue one prompt; it joins the running batch at a coming step."""
        sequence = Sequence(prompt, sampling, listener)
        with self._cond:
            if self._closed:
                raise ModelError("the generation engine has stopped")
            self._incoming.append(sequence)
            self._cond.notify()
        return sequence

    def cancel(self, sequence: Sequence) -> None:
        """Stop ``sequence`` at the next step; it gets no answer."""
        sequence.cancel()
        with self._cond:
            self._cond.notify()

    def stats(self) -> EngineStats:
        return EngineStats(
            running=len(self._rows), waiting=len(self._waiting) + len(self._incoming),
            batch_size=self._batch_size, generated_tokens=self._generated_total,
        )  # fmt: skip

    def close(self, timeout: float = 5.0) -> None:
        with self._cond:
            self._closed = True
            self._cond.notify()
        self._thread.join(timeout)

    # --- the engine thread -----------------------------------------------------------------

    def _loop(self) -> None:
        while True:
            with self._cond:
                while not (self._incoming or self._waiting or self._rows or self._closed):
                    self._cond.wait()
                if self._closed:
                    return
                incoming, self._incoming = self._incoming, []
            try:
                with torch.inference_mode():
                    for sequence in incoming:
                        self._tokenize(sequence)
                    self._step()
            except Exception as exc:  # a bug of ours, not a model's failure: still, never stop serving
                self._fail_running(ModelError(f"{type(exc).__name__}: {exc}"))
            if self.on_change is not None:
                _safely(self.on_change, self.stats())

    def _tokenize(self, sequence: Sequence) -> None:
        """Ids, limits and per-sequence state, then the queue; a bad prompt fails alone."""
        if sequence.cancelled:
            return
        try:
            ids = encode_prompt(self.tokenizer, sequence.prompt)
            sampling = sequence.sampling
            if sampling.truncate is not None:
                ids = ids[-sampling.truncate:]
            if not ids:
                raise ValidationError("the prompt is empty; send at least one token of text in 'inputs'")
            sequence.max_new_tokens = sampling.max_new_tokens
            if self.max_positions:
                room = self.max_positions - len(ids)
                if room <= 0 or (sampling.max_new_tokens_given and sampling.max_new_tokens > room):
                    raise GenerationLimitExceeded(
                        f"the prompt is {len(ids)} tokens and max_new_tokens {sampling.max_new_tokens}; this model "
                        f"takes at most {self.max_positions} tokens in all: shorten the prompt (or send 'truncate') "
                        "or ask for fewer new tokens"
                    )
                sequence.max_new_tokens = min(sampling.max_new_tokens, room)
        except Exception as exc:
            _safely(sequence.listener.fail, exc if isinstance(exc, ValidationError) else ModelError(f"{type(exc).__name__}: {exc}"))
            return
        sequence.prompt_ids = ids
        sequence.ids = list(ids)
        if not sampling.greedy:
            sequence.seed = sampling.seed if sampling.seed is not None else secrets.randbits(63)
            sequence.generator = new_generator(sequence.seed, self.device)
        sequence.decoder = IncrementalDecoder(self.tokenizer, ids)
        sequence.stops = StopMatcher(sampling.stop)
        self._waiting.append(sequence)

    def _step(self) -> None:
        self._evict([row for row in self._rows if row.cancelled])
        admitted = self._admit()
        if admitted:
            try:
                self._prefill(admitted)
            except Exception as exc:
                error = ModelError(f"{type(exc).__name__}: {exc}")
                for sequence in admitted:
                    if not sequence.cancelled and sequence not in self._rows:
                        _safely(sequence.listener.fail, error)
        if self._rows:
            try:
                self._decode()
            except Exception as exc:
                self._fail_running(ModelError(f"{type(exc).__name__}: {exc}"))

    def _fail_running(self, error: Exception) -> None:
        """Every running sequence ends with ``error`` and the batch starts empty again."""
        rows, self._rows = self._rows, []
        self._cache = self._mask = self._lengths = self._next = None
        for sequence in rows:
            if not sequence.cancelled:
                _safely(sequence.listener.fail, error)

    def _admit(self) -> list[Sequence]:
        """The waiting sequences that join this step, oldest first, within the limits."""
        room = self.max_batch_size - len(self._rows)
        budget = self.max_batch_tokens - len(self._rows)
        admitted: list[Sequence] = []
        longest = 0
        while self._waiting and len(admitted) < room:
            sequence = self._waiting[0]
            if sequence.cancelled:
                self._waiting.popleft()
                continue
            longest_after = max(longest, len(sequence.prompt_ids))
            if admitted and (len(admitted) + 1) * longest_after > budget:
                break  # prefill pads to the longest prompt: that is what it costs
            admitted.append(self._waiting.popleft())
            longest = longest_after
        return admitted

    def _prefill(self, sequences: list[Sequence]) -> None:
        from transformers import DynamicCache

        lengths = [len(sequence.prompt_ids) for sequence in sequences]
        width = max(lengths)
        ids = torch.full((len(sequences), width), self.pad_id, dtype=torch.long)
        mask = torch.zeros((len(sequences), width), dtype=torch.long)
        for row, sequence in enumerate(sequences):
            ids[row, width - lengths[row]:] = torch.tensor(sequence.prompt_ids, dtype=torch.long)
            mask[row, width - lengths[row]:] = 1
        ids, mask = ids.to(self.device), mask.to(self.device)
        positions = (mask.cumsum(-1) - 1).clamp(min=0)
        details = any(sequence.sampling.decoder_input_details for sequence in sequences)
        extra = {} if details else {"logits_to_keep": 1}
        output = self.model(
            input_ids=ids, attention_mask=mask, position_ids=positions, cache=DynamicCache(), use_cache=True,
            **extra,
        )  # fmt: skip
        if details:
            self._prefill_details(sequences, output.logits, lengths)
        self._batch_size = len(sequences) + len(self._rows)
        chosen = self._choose(output.logits[:, -1, :], sequences)
        keep: list[int] = []
        for row, (sequence, choice) in enumerate(zip(sequences, chosen, strict=True)):
            if self._emit(sequence, choice):
                keep.append(row)
        if keep:
            self._merge(
                sequences, keep, output.cache, mask,
                torch.tensor(lengths, device=self.device), [chosen[row] for row in keep],
            )  # fmt: skip

    def _prefill_details(self, sequences: list[Sequence], logits: torch.Tensor, lengths: list[int]) -> None:
        width = logits.shape[1]
        for row, sequence in enumerate(sequences):
            if not sequence.sampling.decoder_input_details:
                continue
            start = width - lengths[row]
            logprobs = torch.log_softmax(logits[row, start:].float(), dim=-1)
            prompt = sequence.prompt_ids
            sequence.prefill = [PrefillToken(prompt[0], self.tokenizer.decode([prompt[0]]))] + [
                PrefillToken(token, self.tokenizer.decode([token]), float(logprobs[i, token]))
                for i, token in enumerate(prompt[1:])
            ]

    def _decode(self) -> None:
        assert self._mask is not None and self._lengths is not None and self._next is not None
        mask = torch.cat([self._mask, self._mask.new_ones((self._mask.shape[0], 1))], dim=1)
        output = self.model(
            input_ids=self._next[:, None], attention_mask=mask, position_ids=self._lengths[:, None],
            cache=self._cache, use_cache=True,
        )  # fmt: skip
        self._cache, self._mask = output.cache, mask
        self._lengths = self._lengths + 1
        rows = list(self._rows)
        self._batch_size = len(rows)
        chosen = self._choose(output.logits[:, -1, :], rows)
        done: list[Sequence] = []
        next_ids: list[int] = []
        for sequence, choice in zip(rows, chosen, strict=True):
            if not self._emit(sequence, choice):
                done.append(sequence)
            next_ids.append(choice[0] if isinstance(choice, tuple) else self.pad_id)
        self._next = torch.tensor(next_ids, dtype=torch.long, device=self.device)
        self._evict(done)

    def _choose(self, logits: torch.Tensor, sequences: list[Sequence]) -> list[tuple[int, float] | Exception]:
        """Each row's next token and log-probability, or the exception its own choice raised."""
        logits = logits.float()
        plain = [not (s.sampling.do_sample and not s.sampling.greedy) and s.sampling.repetition_penalty == 1.0 for s in sequences]
        chosen: list[tuple[int, float] | Exception] = []
        best_list: list[int] = []
        logprob_list: list[float] = []
        if any(plain):
            logprobs = torch.log_softmax(logits, dim=-1)
            best = torch.argmax(logits, dim=-1)
            best_logprobs = logprobs.gather(1, best[:, None])[:, 0]
            best_list, logprob_list = best.tolist(), best_logprobs.tolist()
        for row, sequence in enumerate(sequences):
            if plain[row]:
                chosen.append((int(best_list[row]), float(logprob_list[row])))
                continue
            try:
                scores = logits[row]
                if sequence.sampling.repetition_penalty != 1.0:
                    scores = penalise(scores, sequence.ids, sequence.sampling.repetition_penalty)
                chosen.append(sample_row(scores, sequence.sampling, sequence.generator))
            except Exception as exc:
                chosen.append(exc)
        return chosen

    def _emit(self, sequence: Sequence, choice: tuple[int, float] | Exception) -> bool:
        """Hand one token to its listener; False when the sequence has ended (finished or failed)."""
        if sequence.cancelled:
            return False
        if isinstance(choice, Exception):
            _safely(sequence.listener.fail, ModelError(f"{type(choice).__name__}: {choice}"))
            return False
        assert sequence.decoder is not None and sequence.stops is not None
        token_id, logprob = choice
        sequence.ids.append(token_id)
        sequence.generated += 1
        self._generated_total += 1
        special = token_id in self.special_ids
        text, stopped = sequence.stops.feed(sequence.decoder.add(token_id) if not special else "")
        reason: FinishReason | None = (
            "eos_token" if token_id in self.eos_ids
            else "stop_sequence" if stopped
            else "length" if sequence.generated >= sequence.max_new_tokens
            else None
        )  # fmt: skip
        if reason is not None and reason != "stop_sequence":
            text += sequence.stops.flush()
        token = GeneratedToken(token_id, text, logprob, special)
        sequence.texts.append(text)
        if sequence.sampling.details:
            sequence.tokens.append(token)
        _safely(sequence.listener.token, token)
        if reason is None:
            return True
        generated = "".join(sequence.texts)
        if sequence.sampling.return_full_text:
            prompt = sequence.prompt
            generated = (prompt if isinstance(prompt, str) else self.tokenizer.decode(sequence.prompt_ids, skip_special_tokens=True)) + generated
        summary = CompletionSummary(
            generated_text=generated, finish_reason=reason, generated_tokens=sequence.generated,
            prompt_tokens=len(sequence.prompt_ids), seed=sequence.seed,
            tokens=sequence.tokens if sequence.sampling.details else None, prefill=sequence.prefill,
        )  # fmt: skip
        _safely(sequence.listener.finish, summary)
        return False

    # --- the batch's tensors -----------------------------------------------------------------

    def _merge(
        self, sequences: list[Sequence], keep: list[int], cache: Any, mask: torch.Tensor, lengths: torch.Tensor,
        chosen: list[tuple[int, float] | Exception],
    ) -> None:  # fmt: skip
        """Join the prefilled rows ``keep`` of ``cache`` to the running batch, padding both on the left."""
        index = torch.tensor(keep, dtype=torch.long, device=self.device)
        if len(keep) != len(sequences):
            for layer in cache.layers:
                layer.keys, layer.values = layer.keys.index_select(0, index), layer.values.index_select(0, index)
            mask, lengths = mask.index_select(0, index), lengths.index_select(0, index)
        next_ids = torch.tensor([c[0] for c in chosen if isinstance(c, tuple)], dtype=torch.long, device=self.device)
        new_rows = [sequences[row] for row in keep]
        if self._cache is None or self._mask is None or self._lengths is None or self._next is None:
            self._cache, self._mask, self._lengths, self._next = cache, mask, lengths, next_ids
            self._rows = new_rows
            return
        width = max(self._mask.shape[1], mask.shape[1])
        for old, new in zip(self._cache.layers, cache.layers, strict=True):
            old.keys = torch.cat([_pad_cache(old.keys, width), _pad_cache(new.keys, width)], dim=0)
            old.values = torch.cat([_pad_cache(old.values, width), _pad_cache(new.values, width)], dim=0)
        self._mask = torch.cat([F.pad(self._mask, (width - self._mask.shape[1], 0)), F.pad(mask, (width - mask.shape[1], 0))])
        self._lengths = torch.cat([self._lengths, lengths])
        self._next = torch.cat([self._next, next_ids])
        self._rows = self._rows + new_rows

    def _evict(self, leaving: list[Sequence]) -> None:
        """Drop rows (finished, failed or cancelled) and the columns that were padding for all that stay."""
        if not leaving:
            return
        gone = set(map(id, leaving))
        keep = [row for row, sequence in enumerate(self._rows) if id(sequence) not in gone]
        if not keep:
            self._rows, self._cache = [], None
            self._mask = self._lengths = self._next = None
            return
        assert self._mask is not None and self._lengths is not None and self._next is not None
        index = torch.tensor(keep, dtype=torch.long, device=self.device)
        mask = self._mask.index_select(0, index)
        first = int(mask.any(dim=0).nonzero()[0])  # leading columns that are padding in every row
        for layer in self._cache.layers:
            layer.keys = layer.keys.index_select(0, index)[..., first:, :]
            layer.values = layer.values.index_select(0, index)[..., first:, :]
        self._mask = mask[:, first:]
        self._lengths = self._lengths.index_select(0, index)
        self._next = self._next.index_select(0, index)
        self._rows = [self._rows[row] for row in keep]


def _pad_cache(tensor: torch.Tensor, width: int) -> torch.Tensor:
    """Left-pad a ``[batch, heads, length, dim]`` cache tensor with zeros to ``width`` positions."""
    missing = width - tensor.shape[-2]
    return F.pad(tensor, (0, 0, missing, 0)) if missing else tensor


def _safely(callback: Callable[[Any], None], value: Any) -> None:
    """A listener's failure (a closed connection) must never stop the engine."""
    try:
        callback(value)
    except Exception:  # the engine must serve the others
        pass


def wait_idle(engine: GenerationEngine, timeout: float = 10.0) -> bool:
    """For tests: True once nothing is queued or running."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        stats = engine.stats()
        if stats.running == 0 and stats.waiting == 0:
            return True
        time.sleep(0.01)
    return False
