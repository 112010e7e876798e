"""Serve an exported graph with ONNX Runtime behind the transformers model's own interface.

``OnnxModel`` is a ``torch.nn.Module`` that looks, to transformers pipelines, to hubserve's
question answering and to sentence-transformers' ``Transformer`` module, like the model it
was exported from: ``model(**tokenizer_output)`` returns the same output class
(``SequenceClassifierOutput``, ``QuestionAnsweringModelOutput``, ...) with torch tensors,
and it has ``config``, ``device``, ``dtype`` and ``can_generate()``. So every task's
pre- and post-processing is the torch path's code, unchanged.
"""

from __future__ import annotations

import importlib
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import torch


def open_session(path: Path, threads: int) -> Any:
    """An ONNX Runtime CPU session: ``threads`` intra-op threads, one inter-op, every graph optimisation."""
    import onnxruntime

    options = onnxruntime.SessionOptions()
    options.intra_op_num_threads = max(1, threads)
    options.inter_op_num_threads = 1
    options.graph_optimization_level = onnxruntime.GraphOptimizationLevel.ORT_ENABLE_ALL
    options.log_severity_level = 3  # errors only: the replica log is for the user
    return onnxruntime.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])


def _output_class(dotted: str) -> Any:
    module, _, name = dotted.rpartition(".")
    if not module.startswith("transformers."):
        raise ValueError(f"unexpected output class {dotted!r} in an export's meta.json")
    return getattr(importlib.import_module(module), name)


class OnnxModel(torch.nn.Module):
    """An ONNX Runtime session wearing the transformers model's interface (CPU, float32 outputs)."""

    main_input_name = "input_ids"

    _classes: ClassVar[dict[str, type[OnnxModel]]] = {}  # one subclass per wrapped model class

    @classmethod
    def wrap(cls, session: Any, config: Any, meta: dict[str, Any], runtime: str) -> OnnxModel:
        """An OnnxModel whose class is named after the exported architecture.

        Pipelines log an error for a model class they do not list for their task (by
        ``__class__.__name__``); the session serves that architecture, so it carries its name
        (the qualified name and ``repr`` still say OnnxModel and the runtime).
        """
        architecture = str(meta.get("architecture") or cls.__name__)
        named = cls._classes.get(architecture)
        if named is None:
            named = type(architecture, (cls,), {"__qualname__": f"OnnxModel[{architecture}]"})
            cls._classes[architecture] = named
        return named(session, config, meta, runtime)

    def __init__(self, session: Any, config: Any, meta: dict[str, Any], runtime: str) -> None:
        super().__init__()
        self.session = session
        self.config = config
        self.runtime = runtime  # "onnx" or "onnx-int8"
        self.architecture = str(meta.get("architecture", ""))
        self.base_model_prefix = str(meta.get("base_model_prefix", ""))
        self.input_names = [i.name for i in session.get_inputs()]
        self.output_names = [o.name for o in session.get_outputs()]
        self.output_class = _output_class(str(meta["output_class"]))
        self.dtype = torch.float32

    @property
    def device(self) -> torch.device:
        return torch.device("cpu")

    def can_generate(self) -> bool:
        return False

    def forward(
        self,
        input_ids: torch.Tensor | None = None,
        attention_mask: torch.Tensor | None = None,
        token_type_ids: torch.Tensor | None = None,
        **ignored: Any,
    ) -> Any:
        """Run the graph; inputs it does not take are ignored (as a torch forward ignores ``None``)."""
        if input_ids is None:
            raise ValueError("an ONNX-exported model needs input_ids")
        given = {"input_ids": input_ids, "attention_mask": attention_mask, "token_type_ids": token_type_ids}
        feed: dict[str, np.ndarray] = {}
        for name in self.input_names:
            tensor = given.get(name)
            if tensor is None:
                tensor = ignored.get(name)
            if tensor is None:
                fill = 1 if name == "attention_mask" else 0
                feed[name] = np.full(tuple(input_ids.shape), fill, dtype=np.int64)
            else:
                feed[name] = tensor.detach().cpu().numpy().astype(np.int64, copy=False)
        values = self.session.run(self.output_names, feed)
        return self.output_class(
            **{name: torch.from_numpy(value) for name, value in zip(self.output_names, values, strict=True)}
        )

    def extra_repr(self) -> str:
        return f"runtime={self.runtime}, architecture={self.architecture}"
