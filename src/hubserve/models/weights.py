"""Read a model folder's weights safely: safetensors only, no remote code, no network.

Pickle checkpoints (``pytorch_model.bin``, ``.pt``, ``.ckpt``) can run arbitrary code when
loaded, so a folder that only has those is refused with a message saying how to convert
it. ``trust_remote_code`` is never set: a config whose architecture lives in the repo's
own Python files fails to load with transformers' own explanation.

A checkpoint that lacks weights of the model a task runs (a bare encoder deployed as
question-answering: transformers initialises ``qa_outputs`` at random and says so in a
warning) is refused (``WeightsCheck``, ``MissingWeights``) unless the endpoint allows it, so
an endpoint never answers from random weights by accident. The check reads what
``from_pretrained`` already reports (``output_loading_info``): no second load.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch

from hubserve.models.first_token import prune_last_layer

if TYPE_CHECKING:
    from hubserve.models.runtimes import ModelRuntime

DTYPES: dict[str, Any] = {
    "auto": "auto",
    "float32": torch.float32,
    "fp32": torch.float32,
    "float16": torch.float16,
    "fp16": torch.float16,
    "half": torch.float16,
    "bfloat16": torch.bfloat16,
    "bf16": torch.bfloat16,
}
_PICKLE_PATTERNS = ("*.bin", "*.pt", "*.pth", "*.ckpt")
# Weights a task's model holds but never uses, so a checkpoint without them answers the same:
# feature extraction reads the encoder's hidden states, not BERT's pooler.
_UNUSED_BY_TASK: dict[str, tuple[str, ...]] = {"feature-extraction": ("pooler.",)}
_KEYS_SHOWN = 8


class PickleWeightsRefused(ValueError):
    """The folder has pickle weights only; hubserve loads safetensors."""


class MissingWeights(ValueError):
    """The checkpoint lacks weights of the task's model: they would be random, and so would the answers."""

    phase = "weights"  # the replica's error file: the message is the whole reason, no "loading failed" prefix


@dataclass
class WeightsCheck:
    """What a replica asks of every checkpoint it loads for ``task``: all the weights the task's model has.

    Called with the keys ``from_pretrained`` reports missing (or an ONNX export recorded when it
    loaded the model). ``allow_missing`` (the spec's ``model.allow_missing_weights``) serves them
    anyway; ``missing`` then keeps what was initialised at random, and the replica's log names it.
    """

    task: str
    allow_missing: bool = False
    missing: list[str] = field(default_factory=list)

    def __call__(self, model_dir: Path, missing_keys: Iterable[str]) -> None:
        unused = tuple(f".{module}" for module in _UNUSED_BY_TASK.get(self.task, ()))
        keys = sorted({key for key in missing_keys if not any(part in f".{key}" for part in unused)})
        if not keys:
            return
        if not self.allow_missing:
            raise MissingWeights(missing_weights_message(Path(model_dir), self.task, keys))
        self.missing = keys
        print(
            f"model.allow_missing_weights: {_listed(keys)} not in the checkpoint; initialised at random",
            flush=True,
        )


def missing_weights_message(model_dir: Path, task: str, keys: list[str]) -> str:
    """The failure reason: which weights are missing, which tasks the weights do serve, what to change."""
    from hubserve.models.task_inference import head_tasks

    heads = [t for t in head_tasks(model_dir) if t != task]
    has = (
        f"Its weights have a head for: {', '.join(heads)}; deploy it with one of those as model.task"
        if heads
        else "Its config.json names no architecture with a head hubserve serves; deploy a model trained for the task"
    )
    verb = "is" if len(keys) == 1 else "are"
    return (
        f"the model in {model_dir} has no trained weights for {task}: {_listed(keys)} {verb} missing from its "
        f"checkpoint, so transformers would initialise {'it' if len(keys) == 1 else 'them'} at random and every "
        f"answer would be meaningless. {has}, or set model.allow_missing_weights: true to serve it anyway."
    )


def _listed(keys: list[str]) -> str:
    shown = ", ".join(keys[:_KEYS_SHOWN])
    return shown if len(keys) <= _KEYS_SHOWN else f"{shown} and {len(keys) - _KEYS_SHOWN} more"


def resolve_dtype(dtype: str) -> Any:
    """``"auto"`` (the dtype the weights were saved in) or a torch dtype."""
    try:
        return DTYPES[dtype.lower()]
    except (KeyError, AttributeError):
        raise ValueError(f"unknown dtype {dtype!r}; use auto, float32, float16 or bfloat16") from None


def resolve_device(device: str) -> str:
    """Check that the device exists here; ``cuda`` without a GPU fails now, not mid-request."""
    name = (device or "cpu").lower()
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise RuntimeError(f"device {device!r} was requested but no CUDA GPU is visible to this process")
    torch.device(name)  # raises on nonsense such as "gpu0"
    return name


def check_safetensors(model_dir: Path) -> None:
    """Raise PickleWeightsRefused when ``model_dir`` holds pickle weights and no safetensors."""
    model_dir = Path(model_dir)
    if any(model_dir.glob("*.safetensors")) or (model_dir / "model.safetensors.index.json").exists():
        return
    pickles = sorted(p.name for pattern in _PICKLE_PATTERNS for p in model_dir.glob(pattern))
    if pickles:
        raise PickleWeightsRefused(
            f"{model_dir} has only pickle weights ({', '.join(pickles)}); hubserve loads "
            "safetensors only, because unpickling can run arbitrary code. If you trust the file, convert it "
            "once with `AutoModel...from_pretrained(path).save_pretrained(path, safe_serialization=True)` "
            "or pick a revision of the model that ships model.safetensors."
        )


def check_native_architecture(model_dir: Path) -> None:
    """Refuse, with a useful message, a model whose architecture exists only in its own code."""
    from transformers import CONFIG_MAPPING

    try:
        config = json.loads((Path(model_dir) / "config.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return  # from_pretrained reports a missing or broken config itself
    model_type = config.get("model_type") if isinstance(config, dict) else None
    if isinstance(config, dict) and config.get("auto_map") and model_type not in CONFIG_MAPPING:
        raise ValueError(
            f"{model_dir} needs its own modelling code (config.json auto_map, model_type {model_type!r}); "
            "hubserve never runs a model repository's code (trust_remote_code). Pick a model whose "
            "architecture transformers ships, or load it yourself in a handler.py with custom_code: true."
        )


def load_pretrained(
    model_dir: Path, auto_class: Any, dtype: str, device: str, runtime: ModelRuntime | None = None,
    check: WeightsCheck | None = None,
) -> tuple[Any, Any]:  # fmt: skip
    """Load ``(model, tokenizer)`` from a local folder, in eval mode on ``device``.

    With a ``runtime`` (``runtimes.ModelRuntime``: onnx, onnx-int8 or auto), the model may be an
    ONNX Runtime session wearing the transformers model's interface; the runtime decides (and
    applies its own ``check``). ``check`` sees the weights the checkpoint lacks.
    """
    if runtime is not None:
        return runtime.load(model_dir, auto_class, dtype, device)
    return _load_torch(model_dir, auto_class, dtype, device, check)


def _load_torch(model_dir: Path, auto_class: Any, dtype: str, device: str, check: WeightsCheck | None) -> tuple[Any, Any]:
    from transformers import AutoTokenizer

    check_safetensors(model_dir)
    check_native_architecture(model_dir)
    device = resolve_device(device)
    model, loading_info = auto_class.from_pretrained(
        str(model_dir),
        dtype=resolve_dtype(dtype),
        use_safetensors=True,
        trust_remote_code=False,
        local_files_only=True,
        output_loading_info=True,
    )
    if check is not None:
        check(model_dir, loading_info.get("missing_keys") or ())
    model.to(device)
    model.eval()
    prune_last_layer(model)  # first-token classifiers only; any other model is left as it is
    tokenizer = AutoTokenizer.from_pretrained(str(model_dir), trust_remote_code=False, local_files_only=True)
    return model, tokenizer


def load_for_export(model_dir: Path, auto_class_name: str) -> tuple[Any, Any, list[str]]:
    """``(model, tokenizer, missing keys)`` as the ONNX exporter wants them: float32, eager attention, CPU.

    Eager attention because ONNX Runtime's transformer fusions (Attention and friends)
    recognise the graph of the eager code, not SDPA's. The missing keys (weights the checkpoint
    lacks) go into the export's meta, so a replica serving the cached export checks them too.
    """
    import transformers
    from transformers import AutoTokenizer

    check_safetensors(model_dir)
    check_native_architecture(model_dir)
    auto_class = getattr(transformers, auto_class_name)
    model, loading_info = auto_class.from_pretrained(
        str(model_dir),
        dtype=torch.float32,
        attn_implementation="eager",
        use_safetensors=True,
        trust_remote_code=False,
        local_files_only=True,
        output_loading_info=True,
    )
    model.eval()
    prune_last_layer(model)  # first-token classifiers only; any other model is left as it is
    tokenizer = AutoTokenizer.from_pretrained(str(model_dir), trust_remote_code=False, local_files_only=True)
    return model, tokenizer, sorted(loading_info.get("missing_keys") or ())
