"""Which runtime serves a model: ``torch``, ``onnx``, ``onnx-int8`` or ``auto``.

``onnx`` and ``onnx-int8`` serve the model's ONNX export (``onnx_export``) with ONNX Runtime
(``onnx_runtime.OnnxModel``); ``auto`` times a short warm-up of each runtime the model
supports on first deployment and keeps the fastest whose answers agree with torch's, and
caches that decision beside the export so later replicas load only the winner.

Nothing here fails a deployment: a task, device or dtype the exporter does not cover, or a
model it cannot export, runs on torch and ``runtime_info["fallback_reason"]`` says why. The one
exception is the weights check (``weights.WeightsCheck``): a checkpoint that lacks weights of the
task's model fails on every runtime alike, read from the export's meta when ONNX serves.

Each slow step (exporting, optimizing, quantizing, loading, auto's warm-up timing) is begun in
the ``progress`` the replica watches (``models.progress``).

``runtime_info`` (what the replica reports and ``describe`` shows as ``runtime``)::

    {"requested": "auto", "chosen": "onnx-int8",
     "timings_ms": {"torch": 130.1, "onnx": 77.0, "onnx-int8": 52.2},  # auto: median of the timed runs
     "decision": "timed" | "cached",                                  # auto: timed now, or read from the cache
     "rejected": {"onnx-int8": "..."},                                # auto: runtimes left out, and why
     "cache": "hit" | "miss",                                         # onnx*: the export was already cached
     "session_load_ms": 84.0,                                         # onnx*: opening the ONNX Runtime session
     "fallback_reason": "..."}                                        # chosen torch although onnx* was asked
"""

from __future__ import annotations

import gc
import statistics
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch

from hubserve.models import onnx_export
from hubserve.models.onnx_runtime import OnnxModel, open_session
from hubserve.models.progress import LOADING, WARMING_UP, Progress
from hubserve.models.weights import MissingWeights, WeightsCheck

RUNTIMES = ("torch", "onnx", "onnx-int8", "auto")
ONNX_TASKS = frozenset({
    "text-classification",
    "token-classification",
    "fill-mask",
    "feature-extraction",
    "zero-shot-classification",
    "question-answering",
    "sentence-embeddings",
    "sentence-similarity",
})  # fmt: skip
GENERATION_TASKS = frozenset({"text-generation", "summarization", "translation", "text2text-generation"})
GENERATION_REASON = "the ONNX exporter in hubserve covers encoder tasks; generation runs on torch"
PROBE_TOKENS = 128  # auto times one sequence of this many tokens
TIMED_RUNS = 3  # after one untimed warm-up run
_PROBE_TEXT = "The film was slow to start, but the acting and the music were wonderful. " * 16
COSINE_AGREEMENT = 0.99  # hidden states (feature extraction, sentences): per-token cosine to torch's


def torch_only_reason(runtime: str, task: str, *, device: str, dtype: str) -> str | None:
    """Why ``runtime`` cannot apply to this task, device or dtype (None: it can, or it is torch)."""
    if runtime not in RUNTIMES:
        raise ValueError(f"unknown runtime {runtime!r}; use one of {', '.join(RUNTIMES)}")
    if runtime == "torch":
        return None
    if task in GENERATION_TASKS:
        return GENERATION_REASON
    if task not in ONNX_TASKS:
        return f"hubserve has no ONNX export for task {task}; it runs on torch"
    if (device or "cpu").lower().startswith("cuda"):
        return "GPU endpoints run torch (float16/bfloat16 on CUDA); the ONNX runtimes serve CPU endpoints"
    if dtype.lower() not in ("auto", "float32", "fp32"):
        return f"the ONNX runtimes run float32 (and int8) graphs; dtype {dtype} runs on torch"
    return None


class ModelRuntime:
    """Loads models for one of onnx, onnx-int8 or auto, and records what it chose in ``info``."""

    def __init__(
        self, requested: str, *, cache_dir: Path | None = None, threads: int = 1,
        check: WeightsCheck | None = None, progress: Progress | None = None,
    ) -> None:  # fmt: skip
        if requested not in ("onnx", "onnx-int8", "auto"):
            raise ValueError(f"ModelRuntime serves onnx, onnx-int8 or auto, not {requested!r}")
        self.requested = requested
        self.cache_dir = Path(cache_dir) if cache_dir is not None else onnx_export.default_cache_dir()
        self.threads = max(1, threads)
        self.check = check  # the weights check, for torch loads and exports alike
        self.progress = progress or Progress()
        self.info: dict[str, Any] = {"requested": requested, "chosen": "torch"}

    # -- the two ways predictors load models -----------------------------------------------

    def load(self, model_dir: Path, auto_class: Any, dtype: str, device: str) -> tuple[Any, Any]:
        """``(model, tokenizer)`` like ``weights.load_pretrained``; the model may be an OnnxModel."""
        from transformers import AutoConfig, AutoTokenizer

        from hubserve.models.weights import check_native_architecture, check_safetensors, load_pretrained

        check_safetensors(model_dir)
        check_native_architecture(model_dir)
        tokenizer = AutoTokenizer.from_pretrained(str(model_dir), trust_remote_code=False, local_files_only=True)

        def torch_model() -> Any:
            self.progress.begin(LOADING)
            return load_pretrained(model_dir, auto_class, dtype, device, check=self.check)[0]

        def config() -> Any:
            return AutoConfig.from_pretrained(str(model_dir), trust_remote_code=False, local_files_only=True)

        return self._choose(model_dir, auto_class.__name__, tokenizer, torch_model, config), tokenizer

    def sentence_model(self, model_dir: Path, model: Any) -> Any:
        """A SentenceTransformer whose transformer runs on the chosen runtime; pooling stays torch."""
        first = model[0] if len(model) else None
        inner: Any = getattr(first, "model", None)
        if first is None or getattr(first, "transformer_task", None) != "feature-extraction" or not hasattr(inner, "config"):
            self._fall_back(
                f"the sentence-transformers model's first module is {type(first).__name__}, "
                "not a transformer hubserve exports; it runs on torch"
            )
            return model
        chosen = self._choose(model_dir, "AutoModel", model.tokenizer, lambda: inner, lambda: inner.config)
        if chosen is not inner:
            first.model = chosen
            gc.collect()
        return model

    # -- choosing ----------------------------------------------------------------------------

    def _choose(
        self, model_dir: Path, auto_class_name: str, tokenizer: Any,
        torch_model: Callable[[], Any], config: Callable[[], Any],
    ) -> Any:  # fmt: skip
        """The model to serve; anything going wrong on the ONNX side means torch, with the reason."""
        try:
            return self._choose_or_raise(model_dir, auto_class_name, tokenizer, torch_model, config)
        except MissingWeights:
            raise  # not the runtime's failure: torch would load the same random weights
        except onnx_export.ExportFailed as exc:
            self._fall_back(f"{exc}; it runs on torch")
        except Exception as exc:  # an unwritable cache, a corrupt file, ONNX Runtime refusing a graph...
            self._fall_back(onnx_export.describe_failure(f"runtime {self.requested} failed", exc))
        for key in ("cache", "session_load_ms", "decision", "timings_ms", "rejected"):
            self.info.pop(key, None)
        return torch_model()

    def _choose_or_raise(
        self, model_dir: Path, auto_class_name: str, tokenizer: Any,
        torch_model: Callable[[], Any], config: Callable[[], Any],
    ) -> Any:  # fmt: skip
        folder = onnx_export.key_dir(model_dir, auto_class_name, self.cache_dir)
        if self.requested == "auto":
            return self._auto(model_dir, auto_class_name, folder, tokenizer, torch_model, config)
        self.progress.plan(LOADING)
        built = onnx_export.ensure_artifacts(
            model_dir, auto_class_name, (self.requested,), self.cache_dir, self.progress
        )
        artifact = built[self.requested]
        if isinstance(artifact, str):
            self._fall_back(artifact)
            return torch_model()
        self._check_export(model_dir, artifact)
        self.progress.begin(LOADING)
        model = self._open(artifact, config())
        self.info.update(chosen=self.requested, cache="hit" if artifact.cached else "miss")
        return model

    def _check_export(self, model_dir: Path, artifact: onnx_export.Artifact) -> None:
        """The weights check on what the export loaded (recorded in its meta): no torch load needed."""
        if self.check is not None:
            self.check(model_dir, artifact.meta.get("missing_keys") or ())

    def _open(self, artifact: onnx_export.Artifact, config: Any) -> OnnxModel:
        started = time.perf_counter()
        session = open_session(artifact.path, self.threads)
        self.info["session_load_ms"] = round((time.perf_counter() - started) * 1000, 1)
        return OnnxModel.wrap(session, config, artifact.meta, artifact.variant)

    def _fall_back(self, reason: str) -> None:
        self.info.update(chosen="torch", fallback_reason=reason)

    def _auto(
        self, model_dir: Path, auto_class_name: str, folder: Path, tokenizer: Any,
        torch_model: Callable[[], Any], config: Callable[[], Any],
    ) -> Any:  # fmt: skip
        decision_path = folder / f"auto-threads{self.threads}.json"
        decision = onnx_export.read_json(decision_path)
        if isinstance(decision, dict) and decision.get("chosen") in ("torch", *onnx_export.VARIANTS):
            chosen = str(decision["chosen"])
            artifact = None if chosen == "torch" else onnx_export.cached_artifact(folder, chosen)
            if chosen == "torch" or artifact is not None:
                self.info.update(chosen=chosen, timings_ms=decision.get("timings_ms", {}), decision="cached")
                for optional in ("rejected", "fallback_reason"):
                    if decision.get(optional):
                        self.info[optional] = decision[optional]
                if artifact is None:
                    return torch_model()
                self._check_export(model_dir, artifact)
                self.progress.begin(LOADING)
                self.info["cache"] = "hit"
                return self._open(artifact, config())
            # the chosen export was removed from the cache: decide again

        self.progress.plan(LOADING, WARMING_UP)
        built = onnx_export.ensure_artifacts(
            model_dir, auto_class_name, onnx_export.VARIANTS, self.cache_dir, self.progress
        )
        rejected = {variant: reason for variant, reason in built.items() if isinstance(reason, str)}
        candidates: dict[str, Any] = {"torch": torch_model()}
        for variant, result in built.items():
            if isinstance(result, onnx_export.Artifact):
                candidates[variant] = OnnxModel.wrap(
                    open_session(result.path, self.threads), config(), result.meta, variant
                )
        self.progress.begin(WARMING_UP)
        probe = self._probe_inputs(tokenizer, candidates["torch"])
        timings = {name: _median_ms(model, probe) for name, model in candidates.items()}
        reference = _outputs(candidates["torch"], probe)
        for name in [n for n in candidates if n != "torch"]:
            disagreement = _disagreement(reference, _outputs(candidates[name], probe), probe.get("attention_mask"))
            if disagreement:
                rejected[name] = disagreement
                del candidates[name]
        chosen = min(candidates, key=lambda name: timings[name])
        record: dict[str, Any] = {"chosen": chosen, "timings_ms": timings}
        if rejected:
            record["rejected"] = rejected
        if not any(isinstance(artifact, onnx_export.Artifact) for artifact in built.values()):
            record["fallback_reason"] = "; ".join(sorted(set(rejected.values())))
        self.info.update(record, decision="timed")
        onnx_export.write_json_atomic(decision_path, {**record, "threads": self.threads, "decided_at": time.time()})
        if chosen != "torch":
            picked = built[chosen]
            assert isinstance(picked, onnx_export.Artifact)
            self.info["cache"] = "hit" if picked.cached else "miss"
        model = candidates.pop(chosen)
        candidates.clear()
        gc.collect()
        return model

    def _probe_inputs(self, tokenizer: Any, torch_model: Any) -> dict[str, torch.Tensor]:
        """One sequence of ``PROBE_TOKENS`` tokens (fewer if the model is shorter), as torch wants it."""
        import inspect

        limit = getattr(tokenizer, "model_max_length", PROBE_TOKENS) or PROBE_TOKENS
        encoded = tokenizer(_PROBE_TEXT, truncation=True, max_length=min(PROBE_TOKENS, limit), return_tensors="pt")
        accepted = inspect.signature(torch_model.forward).parameters
        return {name: value for name, value in encoded.items() if name in accepted}


def _outputs(model: Any, inputs: dict[str, torch.Tensor]) -> dict[str, np.ndarray]:
    with torch.inference_mode():
        output = model(**inputs)
    return {k: v.float().numpy() for k, v in output.items() if isinstance(v, torch.Tensor)}


def _median_ms(model: Any, inputs: dict[str, torch.Tensor]) -> float:
    times = []
    with torch.inference_mode():
        for run in range(TIMED_RUNS + 1):
            started = time.perf_counter()
            model(**inputs)
            if run:  # the first run warms caches and is not counted
                times.append(time.perf_counter() - started)
    return round(statistics.median(times) * 1000, 2)


def _disagreement(
    reference: dict[str, np.ndarray], got: dict[str, np.ndarray], mask: torch.Tensor | None
) -> str | None:
    """Why ``got`` does not answer like torch (None when it does).

    Logits (classification, token labels, masked tokens, answer spans): the arg-max labels
    must be equal everywhere. Hidden states: every real token's vector must point the same
    way as torch's (cosine >= ``COSINE_AGREEMENT``).
    """
    for name, expected in reference.items():
        value = got.get(name)
        if value is None or value.shape != expected.shape:
            return f"its output {name} has another shape than torch's"
        if name.endswith("logits"):
            differ = int((value.argmax(-1) != expected.argmax(-1)).sum())
            if differ:
                return f"{differ} of its {name} labels differ from torch's on the {PROBE_TOKENS}-token check"
            continue
        a = value.reshape(-1, value.shape[-1]).astype(np.float64)
        b = expected.reshape(-1, expected.shape[-1]).astype(np.float64)
        cosine = (a * b).sum(-1) / np.maximum(np.linalg.norm(a, axis=-1) * np.linalg.norm(b, axis=-1), 1e-12)
        if value.ndim == 3 and mask is not None:
            cosine = cosine[mask.numpy().reshape(-1).astype(bool)]
        if cosine.size and float(cosine.min()) < COSINE_AGREEMENT:
            return f"its {name} differs from torch's (cosine {float(cosine.min()):.3f} < {COSINE_AGREEMENT})"
    return None
