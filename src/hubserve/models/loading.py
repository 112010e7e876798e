"""Load one model folder into what a replica holds: a ``LoadedModel``.

Chooses between the standard predictor for the task and the user's custom code
(``handler.py`` first, then SageMaker ``code/inference.py``), only when the endpoint opted
in with ``custom_code``; otherwise custom files are ignored and a note says so, so the UI
can explain why a handler did not run.

``runtime`` (torch, onnx, onnx-int8, auto; see ``runtimes``) applies to hubserve's standard
predictors, including the default ``model_fn`` of a SageMaker script; a ``handler.py`` or a
script's own ``model_fn`` loads the model itself, so it runs as written and ``runtime_info``
says so.

The standard predictors' checkpoints go through the weights check (``weights.WeightsCheck``):
one that lacks weights of the task's model fails to load (``MissingWeights``) unless
``allow_missing_weights``. ``progress`` hears each step of the load as it begins
(``models.progress``).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

from hubserve.models import custom as user_code
from hubserve.models import tabular
from hubserve.models.jsonable import to_jsonable
from hubserve.models.progress import LOADING, Progress
from hubserve.tasks import normalize_task

RawHandler = Callable[[bytes, str, str], tuple[bytes, str]]


@dataclass
class LoadedModel:
    """A model ready to answer requests, whichever code path serves it."""

    task: str
    predictor: Callable[[Any], Any]
    notes: list[str] = field(default_factory=list)
    custom: bool = False  # user code answers; the body is passed through unchecked
    raw_handler: RawHandler | None = None
    # Which runtime serves, as describe shows it: {"requested", "chosen", "timings_ms"?, "fallback_reason"?}.
    runtime_info: dict[str, Any] = field(default_factory=lambda: {"requested": "torch", "chosen": "torch"})
    # A model's own reading of text/csv bodies (scikit-learn: rows without a header in its columns' order);
    # None: the Hugging Face toolkit's CSV (a header row naming the inputs).
    csv_reader: Callable[[bytes], Any] | None = None
    framework: str = "pytorch"  # sklearn: served by models/tabular.py, in a replica that never imports torch

    @property
    def accepts_raw(self) -> bool:
        """True when user code decodes or encodes bodies itself (SageMaker input_fn/output_fn)."""
        return self.raw_handler is not None

    def predict(self, data: Any) -> Any:
        """Answer one parsed JSON body with plain JSON-able Python."""
        return to_jsonable(self.predictor(data))

    def handle_raw(self, body: bytes, content_type: str, accept: str) -> tuple[bytes, str]:
        """Answer raw bytes as ``(body, content_type)``; JSON in and out unless user code says otherwise."""
        if self.raw_handler is not None:
            return self.raw_handler(body, content_type, accept)
        return user_code.encode_json(self.predict(user_code.decode_json(body, content_type)))


def load_model(
    model_dir: Path,
    task: str,
    *,
    custom_code: bool = False,
    dtype: str = "auto",
    device: str = "cpu",
    runtime: str = "torch",
    cache_dir: Path | None = None,
    threads: int = 1,
    allow_missing_weights: bool = False,
    progress: Progress | None = None,
    trusted_types: Sequence[str] = (),
    allow_pickle: bool = False,
) -> LoadedModel:
    """Load ``model_dir`` for ``task``; user code runs only with ``custom_code=True``.

    ``runtime_info`` of the result says which runtime serves (``runtimes`` module docstring). A folder in
    the Hub's scikit-learn layout is served by ``tabular`` (skops types beyond its defaults only when in
    ``trusted_types``; pickle files only with ``allow_pickle``).
    """
    model_dir = Path(model_dir)
    task = normalize_task(task)
    progress = progress or Progress()
    if tabular.is_sklearn_folder(model_dir):
        progress.begin(LOADING)
        predictor, notes = tabular.load_tabular(model_dir, task, trusted_types=trusted_types, allow_pickle=allow_pickle)
        columns = tabular.columns_of(model_dir)
        reader = None if columns is None else partial(tabular.rows_from_csv, columns=columns)
        return LoadedModel(task, predictor, notes, runtime_info={"requested": runtime, "chosen": "sklearn"},
                           csv_reader=reader, framework="sklearn")  # fmt: skip
    # torch and transformers from here on (imported here, so a scikit-learn replica never loads them)
    from hubserve.models.predictors import build_predictor
    from hubserve.models.runtimes import ModelRuntime, torch_only_reason
    from hubserve.models.weights import WeightsCheck

    found = user_code.find_custom_code(model_dir)
    info: dict[str, Any] = {"requested": runtime, "chosen": "torch"}
    reason = torch_only_reason(runtime, task, device=device, dtype=dtype)
    # The sentence tasks pool the encoder's states themselves: there is no head to miss.
    check = None if task in _NO_HEAD else WeightsCheck(task, allow_missing=allow_missing_weights)
    plan = (
        None if runtime == "torch" or reason
        else ModelRuntime(runtime, cache_dir=cache_dir, threads=threads, check=check, progress=progress)
    )  # fmt: skip
    if reason:
        info["fallback_reason"] = reason

    def standard() -> Any:
        if plan is None:
            progress.begin(LOADING)  # a runtime begins its own steps (export, quantize, load)
        return build_predictor(model_dir, task, dtype=dtype, device=device, runtime=plan, check=check)

    def chosen() -> dict[str, Any]:
        return dict(plan.info) if plan is not None else info

    if not custom_code:
        notes = [f"{path} ignored: set custom_code: true to run it" for path in found]
        predictor = standard()
        return LoadedModel(task, predictor, notes, runtime_info=chosen())

    if user_code.HANDLER_FILE in found:
        notes = [f"{user_code.HANDLER_FILE} loaded: EndpointHandler answers requests"]
        if user_code.INFERENCE_FILE in found:
            notes.append(f"{user_code.INFERENCE_FILE} ignored: {user_code.HANDLER_FILE} takes precedence")
        progress.begin(LOADING)
        handler = user_code.load_endpoint_handler(model_dir)
        return LoadedModel(task, handler, notes, custom=True, runtime_info=_user_code(runtime, user_code.HANDLER_FILE))

    if user_code.INFERENCE_FILE in found:
        script = user_code.SageMakerScript(model_dir, standard)
        hooks = ", ".join(script.defined) or "no hooks"
        notes = [f"{user_code.INFERENCE_FILE} loaded ({hooks}); hubserve defaults fill the rest"]
        raw = script.handle_raw if script.accepts_raw else None
        own_model = f"{user_code.INFERENCE_FILE} model_fn"
        runtime_info = chosen() if script.standard_model else _user_code(runtime, own_model)
        return LoadedModel(task, script.predict, notes, custom=True, raw_handler=raw, runtime_info=runtime_info)

    notes = ["custom_code is on but the model has no handler.py or code/inference.py; serving the standard task"]
    predictor = standard()
    return LoadedModel(task, predictor, notes, runtime_info=chosen())


_NO_HEAD = frozenset({"sentence-embeddings", "sentence-similarity"})


def _user_code(runtime: str, loader: str) -> dict[str, Any]:
    """Users' code loads and runs its model itself: it runs as written, which is torch for hubserve."""
    info: dict[str, Any] = {"requested": runtime, "chosen": "torch"}
    if runtime != "torch":
        info["fallback_reason"] = (
            f"{loader} loads the model itself; runtime {runtime} applies to hubserve's standard predictors"
        )
    return info
