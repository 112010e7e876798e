"""A generation request's parameters, checked into one ``Sampling``.

The names are TGI's (``types.py`` describes the neutral request); the toolkit's
``stop_sequence`` counts as one more stop, and TGI clients' ``watermark: false`` and
``truncate`` are accepted. Greedy unless ``do_sample`` is true (``temperature: 0`` is greedy
too), so equal requests get equal answers. ``max_new_tokens`` defaults to the endpoint's
``generation.default_max_new_tokens`` (256) and may not exceed its
``generation.max_new_tokens_limit`` (2048): over it is a 422 (GenerationLimitExceeded) naming the
cap and the setting.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from hubserve.errors import GenerationLimitExceeded, ValidationError
from hubserve.models import requests as rq

DEFAULT_MAX_NEW_TOKENS = 256
MAX_NEW_TOKENS_LIMIT = 2048


@dataclasses.dataclass(frozen=True, slots=True)
class GenerationLimits:
    """The endpoint's generation settings (spec ``generation``), carried in the replica's launch."""

    default_max_new_tokens: int = DEFAULT_MAX_NEW_TOKENS
    max_new_tokens_limit: int = MAX_NEW_TOKENS_LIMIT


@dataclasses.dataclass(frozen=True, slots=True)
class Sampling:
    """How one sequence is generated and what its answer carries."""

    max_new_tokens: int = DEFAULT_MAX_NEW_TOKENS
    max_new_tokens_given: bool = False  # False: the default, shortened to fit the model's positions
    do_sample: bool = False
    temperature: float = 1.0
    top_k: int = 0  # 0: off
    top_p: float = 1.0
    repetition_penalty: float = 1.0
    seed: int | None = None
    stop: tuple[str, ...] = ()
    details: bool = False
    decoder_input_details: bool = False
    return_full_text: bool = False
    truncate: int | None = None  # keep only the prompt's last N tokens

    @property
    def greedy(self) -> bool:
        return not self.do_sample or self.temperature == 0.0


def _top_p(name: str, value: Any) -> float:
    number = float(rq.number()(name, value))
    if not 0.0 < number <= 1.0:
        raise ValidationError(f"parameter '{name}' must be in (0, 1], got {value!r}")
    return number


def _positive(name: str, value: Any) -> float:
    number = float(rq.number()(name, value))
    if number <= 0.0:
        raise ValidationError(f"parameter '{name}' must be greater than 0, got {value!r}")
    return number


def _no_watermark(name: str, value: Any) -> bool:
    if rq.boolean(name, value):
        raise ValidationError(f"parameter '{name}' is not supported by hubserve; send false or leave it out")
    return False


PARAMETERS: dict[str, rq.Check] = {
    "max_new_tokens": rq.integer(1),
    "do_sample": rq.boolean,
    "temperature": rq.number(0.0),
    "top_k": rq.integer(0),
    "top_p": _top_p,
    "repetition_penalty": _positive,
    "seed": rq.integer(0),
    "stop": rq.string_list,
    "stop_sequence": rq.string,  # the toolkit's single stop
    "details": rq.boolean,
    "decoder_input_details": rq.boolean,
    "return_full_text": rq.boolean,
    "watermark": _no_watermark,
    "truncate": rq.integer(1),
}


def engine_runs(parameters: dict[str, Any]) -> bool:
    """Whether these parameter names are all ones the engine serves (else the toolkit pipeline may)."""
    return set(parameters) <= set(PARAMETERS)


def check_sampling(parameters: dict[str, Any], limits: GenerationLimits, task: str = "text-generation") -> Sampling:
    """The checked ``Sampling``; ValidationError naming a bad parameter, GenerationLimitExceeded over the cap."""
    params = rq.check_parameters(parameters, PARAMETERS, task)
    stop = list(params.pop("stop", []))
    if "stop_sequence" in params:
        stop.append(params.pop("stop_sequence"))
    if any(not item for item in stop):
        raise ValidationError("parameter 'stop' must not contain an empty string")
    params.pop("watermark", None)
    given = "max_new_tokens" in params
    max_new_tokens = params.pop("max_new_tokens", limits.default_max_new_tokens)
    if max_new_tokens > limits.max_new_tokens_limit:
        raise GenerationLimitExceeded(
            f"max_new_tokens is {max_new_tokens}, over this endpoint's limit of {limits.max_new_tokens_limit}; "
            "ask for fewer, or raise the endpoint's generation.max_new_tokens_limit"
        )
    return Sampling(max_new_tokens=max_new_tokens, max_new_tokens_given=given, stop=tuple(stop), **params)
