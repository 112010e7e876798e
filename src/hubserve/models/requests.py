"""Parse and check one request body: ``{"inputs": ..., "parameters": {...}}``.

Every check raises ValidationError with what is wrong and how to fix it, before any
model code runs, so a bad body is a 400 and never a 424 from deep inside a pipeline.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

from hubserve.errors import ValidationError

Check = Callable[[str, Any], Any]  # (name, value) -> cleaned value; raises ValidationError


# Tasks whose input is a JSON object, with an example of it. A body without ``inputs`` is taken as
# that object itself, as both Hugging Face inference toolkits do (``data.pop("inputs", data)``).
OBJECT_INPUTS: dict[str, str] = {
    "question-answering": '{"question": "Where do I live?", "context": "I live in Berlin."}',
    "sentence-similarity": '{"source_sentence": "A man is eating.", "sentences": ["A man eats.", "It rains."]}',
    "zero-shot-classification": '{"sequences": "I love travelling", "candidate_labels": ["travel", "cooking"]}',
}
# Zero-shot's object holds the pipeline's call arguments: the text, and what are otherwise parameters.
_ZERO_SHOT_ARGUMENTS = ("candidate_labels", "hypothesis_template", "multi_label")


def split_body(data: Any, task: str) -> tuple[Any, dict[str, Any]]:
    """Return ``(inputs, parameters)`` from a parsed JSON body.

    For a task in ``OBJECT_INPUTS`` a body without ``inputs`` is the input itself, less its
    ``parameters``; any other task needs ``inputs``, and the error says what the task expects.
    """
    if not isinstance(data, dict) or ("inputs" not in data and task not in OBJECT_INPUTS):
        raise ValidationError(
            f"the request body must be a JSON object with an 'inputs' field for {task}, "
            'e.g. {"inputs": "I love this movie", "parameters": {}}'
        )
    parameters = data.get("parameters")
    if parameters is None:
        parameters = {}
    if not isinstance(parameters, dict):
        raise ValidationError("'parameters' must be a JSON object, e.g. {\"top_k\": 2}")
    if "inputs" in data:
        return data["inputs"], parameters
    inputs = {name: value for name, value in data.items() if name != "parameters"}
    if task == "zero-shot-classification":
        return _zero_shot_object(inputs, parameters)
    return inputs, parameters


def _zero_shot_object(inputs: dict[str, Any], parameters: dict[str, Any]) -> tuple[Any, dict[str, Any]]:
    """``{"sequences", "candidate_labels", ...}`` as (the text, parameters); the parameters object wins."""
    if "sequences" not in inputs:
        raise ValidationError(
            "the request body has no 'inputs' and no 'sequences' for zero-shot-classification; send "
            f'{OBJECT_INPUTS["zero-shot-classification"]} or '
            '{"inputs": "I love travelling", "parameters": {"candidate_labels": ["travel", "cooking"]}}'
        )
    unknown = sorted(set(inputs) - {"sequences", *_ZERO_SHOT_ARGUMENTS})
    if unknown:
        raise ValidationError(
            f"unknown field{'s' if len(unknown) > 1 else ''} {', '.join(map(repr, unknown))} for zero-shot-classification; "
            f"the body's fields are sequences, {', '.join(_ZERO_SHOT_ARGUMENTS)} and parameters"
        )
    arguments = {name: inputs[name] for name in _ZERO_SHOT_ARGUMENTS if name in inputs}
    return inputs["sequences"], {**arguments, **parameters}


def check_parameters(parameters: dict[str, Any], allowed: dict[str, Check], task: str) -> dict[str, Any]:
    """Reject unknown names and clean each value with its check.

    A null value means "use the default" and is dropped, unless its check is ``nullable``.
    """
    unknown = sorted(set(parameters) - set(allowed))
    if unknown:
        names = ", ".join(sorted(allowed)) or "none"
        # The last sentence is transformers' own wording: huggingface_hub's InferenceClient reads it
        # (text_generation), drops those parameters with a warning and asks again.
        raise ValidationError(
            f"unknown parameter{'s' if len(unknown) > 1 else ''} {', '.join(map(repr, unknown))} "
            f"for {task}; supported parameters: {names}. "
            f"The following `model_kwargs` are not used by the model: {unknown!r}"
        )
    return {
        name: value if value is None else allowed[name](name, value)
        for name, value in parameters.items()
        if value is not None or getattr(allowed[name], "nullable", False)
    }


def texts(inputs: Any, task: str) -> tuple[list[str], bool]:
    """``inputs`` as a list of strings plus whether the caller sent a list."""
    if isinstance(inputs, str):
        return [inputs], False
    if isinstance(inputs, list) and inputs and all(isinstance(item, str) for item in inputs):
        return list(inputs), True
    if isinstance(inputs, list) and not inputs:
        raise ValidationError(f"'inputs' is an empty list; send at least one string for {task}")
    raise ValidationError(
        f"'inputs' must be a string or a list of strings for {task}, got {_describe(inputs)}"
    )


def _describe(value: Any) -> str:
    if isinstance(value, list):
        kinds = sorted({type(item).__name__ for item in value})
        return f"a list of {'/'.join(kinds)}"
    return f"a {type(value).__name__}"


# -- value checks ---------------------------------------------------------------------

def integer(minimum: int | None = None, maximum: int | None = None) -> Check:
    def check(name: str, value: Any) -> int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ValidationError(f"parameter '{name}' must be an integer, got {value!r}")
        if minimum is not None and value < minimum:
            raise ValidationError(f"parameter '{name}' must be at least {minimum}, got {value}")
        if maximum is not None and value > maximum:
            raise ValidationError(f"parameter '{name}' must be at most {maximum}, got {value}")
        return value

    return check


def number(minimum: float | None = None, maximum: float | None = None) -> Check:
    def check(name: str, value: Any) -> float:
        if isinstance(value, bool) or not isinstance(value, (int, float)) or value != value:  # NaN is no number
            raise ValidationError(f"parameter '{name}' must be a number, got {value!r}")
        if minimum is not None and value < minimum:
            raise ValidationError(f"parameter '{name}' must be at least {minimum}, got {value}")
        if maximum is not None and value > maximum:
            raise ValidationError(f"parameter '{name}' must be at most {maximum}, got {value}")
        return float(value)

    return check


def boolean(name: str, value: Any) -> bool:
    if not isinstance(value, bool):
        raise ValidationError(f"parameter '{name}' must be true or false, got {value!r}")
    return value


def string(name: str, value: Any) -> str:
    if not isinstance(value, str):
        raise ValidationError(f"parameter '{name}' must be a string, got {value!r}")
    return value


def string_list(name: str, value: Any) -> list[str]:
    if isinstance(value, str):
        return [value]
    if isinstance(value, list) and all(isinstance(item, str) for item in value):
        return list(value)
    raise ValidationError(f"parameter '{name}' must be a string or a list of strings, got {value!r}")


def choice(options: Iterable[str]) -> Check:
    options = tuple(options)

    def check(name: str, value: Any) -> str:
        if not isinstance(value, str) or value.lower() not in options:
            raise ValidationError(f"parameter '{name}' must be one of {', '.join(options)}; got {value!r}")
        return value.lower()

    return check


def anything(name: str, value: Any) -> Any:
    return value


def nullable(check: Check) -> Check:
    """Let JSON null through as a meaningful value (``top_k: null`` = every label)."""

    def wrapped(name: str, value: Any) -> Any:
        return check(name, value)

    wrapped.nullable = True  # type: ignore[attr-defined]
    return wrapped


def truncation(name: str, value: Any) -> bool:
    """true/false, or the Inference API's strategy names (``do_not_truncate`` is false)."""
    if isinstance(value, bool):
        return value
    strategies = ("do_not_truncate", "longest_first", "only_first", "only_second")
    if isinstance(value, str) and value in strategies:
        return value != "do_not_truncate"
    raise ValidationError(f"parameter '{name}' must be true, false or one of {', '.join(strategies)}; got {value!r}")


def lift_generate_parameters(parameters: dict[str, Any]) -> dict[str, Any]:
    """The Inference API nests generation settings in ``generate_parameters``; lift them up.

    Top-level parameters win over nested ones of the same name.
    """
    nested = parameters.get("generate_parameters")
    rest = {name: value for name, value in parameters.items() if name != "generate_parameters"}
    if nested is None:
        return rest
    if not isinstance(nested, dict):
        raise ValidationError("parameter 'generate_parameters' must be an object, e.g. {\"max_new_tokens\": 20}")
    return {**nested, **rest}
