"""Generation parameters users may send, checked before ``generate`` sees them.

``generate`` treats unknown keywords as model kwargs and fails deep inside with a
ValueError; a wrong type can fail anywhere. We accept a documented set of sampling and
search knobs, type-check them, then let ``GenerationConfig.validate`` judge their
combination, so every mistake is a ValidationError naming the parameter.
"""

from __future__ import annotations

import copy
import warnings
from typing import Any

from hubserve.errors import ValidationError
from hubserve.models.requests import Check, anything, boolean, integer, number

# Beam search multiplies the work and memory of every step by its width: 3,000 beams on a tiny model
# grew the replica past 2 GB. Eight is what serving stacks allow in practice (TGI has no beams at all).
MAX_BEAMS = 8
MAX_RETURN_SEQUENCES = 8

GENERATION_PARAMETERS: dict[str, Check] = {
    "max_new_tokens": integer(1),
    "min_new_tokens": integer(0),
    "max_length": integer(1),
    "min_length": integer(0),
    "do_sample": boolean,
    "temperature": number(0.0),
    "top_k": integer(0),
    "top_p": number(0.0, 1.0),
    "typical_p": number(0.0),
    "min_p": number(0.0),
    "epsilon_cutoff": number(0.0),
    "eta_cutoff": number(0.0),
    "repetition_penalty": number(0.0),
    "encoder_repetition_penalty": number(0.0),
    "length_penalty": number(),
    "no_repeat_ngram_size": integer(0),
    "encoder_no_repeat_ngram_size": integer(0),
    "num_beams": integer(1, MAX_BEAMS),
    "num_return_sequences": integer(1, MAX_RETURN_SEQUENCES),
    "early_stopping": anything,  # true, false or "never"
    "renormalize_logits": boolean,
    "bad_words_ids": anything,
    "suppress_tokens": anything,
    "forced_bos_token_id": integer(0),
    "forced_eos_token_id": anything,
    "max_time": number(0.0),
}


def check_generation(base_config: Any, kwargs: dict[str, Any]) -> None:
    """Raise ValidationError when ``kwargs`` on top of the model's generation config is invalid."""
    if not kwargs:
        return
    config = copy.deepcopy(base_config)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            config.update(**kwargs)
            config.validate()
    except (ValueError, TypeError) as exc:
        raise ValidationError(f"invalid generation parameters: {exc}") from None
