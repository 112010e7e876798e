"""Users' own inference code: ``handler.py`` and SageMaker ``code/inference.py``.

Both contracts map onto one lifecycle (load once, then decode -> predict -> encode):

* Inference Endpoints: ``handler.py`` defines ``EndpointHandler(path)``; each request's
  parsed JSON body goes to ``handler(data)``.
* SageMaker: ``code/inference.py`` defines any of ``model_fn(model_dir)``,
  ``input_fn(body, content_type)``, ``predict_fn(data, model)`` and
  ``output_fn(prediction, accept)``; each missing hook falls back to hubserve's default
  (the task's standard predictor, JSON decode, run the predictor, JSON encode).

User modules are imported from their file path under a unique module name, so two
models' ``handler.py`` never collide in ``sys.modules``. Nothing here runs unless the
endpoint opted into custom code; this module only imports stdlib at import time.
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import sys
from collections.abc import Callable
from pathlib import Path
from types import ModuleType
from typing import Any

from hubserve.errors import ValidationError

HANDLER_FILE = "handler.py"
INFERENCE_FILE = "code/inference.py"
SAGEMAKER_HOOKS = ("model_fn", "input_fn", "predict_fn", "output_fn")

Predictor = Callable[[Any], Any]


def find_custom_code(model_dir: Path) -> list[str]:
    """Relative paths of the custom-code entry points present in ``model_dir``."""
    model_dir = Path(model_dir)
    return [rel for rel in (HANDLER_FILE, INFERENCE_FILE) if (model_dir / rel).is_file()]


def import_user_module(path: Path) -> ModuleType:
    """Import ``path`` as a fresh module; its folder joins sys.path so sibling imports work."""
    path = Path(path).resolve()
    digest = hashlib.sha1(str(path).encode()).hexdigest()[:12]
    name = f"hubserve_user_{path.stem}_{digest}"
    folder = str(path.parent)
    if folder not in sys.path:
        sys.path.insert(0, folder)
    spec = importlib.util.spec_from_file_location(name, path)
    if spec is None or spec.loader is None:
        raise ImportError(f"cannot import custom code from {path}")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    try:
        spec.loader.exec_module(module)
    except BaseException:
        sys.modules.pop(name, None)
        raise
    return module


def load_endpoint_handler(model_dir: Path) -> Predictor:
    """Instantiate ``EndpointHandler(path)`` from ``model_dir/handler.py``."""
    module = import_user_module(Path(model_dir) / HANDLER_FILE)
    handler_cls = getattr(module, "EndpointHandler", None)
    if handler_cls is None:
        raise AttributeError(
            f"{HANDLER_FILE} in {model_dir} defines no EndpointHandler class; define "
            "`class EndpointHandler: def __init__(self, path): ...; def __call__(self, data): ...`"
        )
    handler: Predictor = handler_cls(str(model_dir))
    return handler


class SageMakerScript:
    """A loaded ``code/inference.py`` with hubserve's defaults for the hooks it omits."""

    def __init__(self, model_dir: Path, default_model: Callable[[], Predictor]) -> None:
        self.module = import_user_module(Path(model_dir) / INFERENCE_FILE)
        self.hooks = {name: getattr(self.module, name, None) for name in SAGEMAKER_HOOKS}
        model_fn = self.hooks["model_fn"]
        self.standard_model = model_fn is None
        self.model: Any = default_model() if model_fn is None else model_fn(str(model_dir))

    @property
    def defined(self) -> list[str]:
        return [name for name, hook in self.hooks.items() if hook is not None]

    @property
    def accepts_raw(self) -> bool:
        """True when the script decodes or encodes bodies itself, so it needs the raw bytes."""
        return self.hooks["input_fn"] is not None or self.hooks["output_fn"] is not None

    def predict(self, data: Any) -> Any:
        predict_fn = self.hooks["predict_fn"]
        if predict_fn is not None:
            return predict_fn(data, self.model)
        if self.standard_model:
            return self.model(data)
        return _toolkit_predict(data, self.model)

    def handle_raw(self, body: bytes, content_type: str, accept: str) -> tuple[bytes, str]:
        input_fn, output_fn = self.hooks["input_fn"], self.hooks["output_fn"]
        data = input_fn(body, content_type) if input_fn is not None else decode_json(body, content_type)
        prediction = self.predict(data)
        if output_fn is None:
            return encode_json(prediction)
        return _normalise_output(output_fn(prediction, accept), accept)


def _toolkit_predict(data: Any, model: Any) -> Any:
    """The HF SageMaker toolkit's default predict_fn for a user model (usually a pipeline)."""
    if not callable(model):
        raise TypeError(
            "model_fn returned a model that is not callable; define predict_fn(data, model) "
            "in code/inference.py"
        )
    if isinstance(data, dict) and "inputs" in data:
        data = dict(data)
        inputs = data.pop("inputs")
        parameters = data.pop("parameters", None) or {}
        return model(inputs, **parameters)
    return model(data)


def decode_json(body: bytes, content_type: str) -> Any:
    """Default input_fn: JSON only, with a message that says what to send instead."""
    media_type = (content_type or "").split(";", 1)[0].strip().lower()
    if media_type not in ("", "*/*", "application/json") and not media_type.endswith("+json"):
        raise ValidationError(
            f"content type '{content_type}' needs an input_fn in code/inference.py; "
            "without one, send application/json"
        )
    try:
        return json.loads(body)
    except ValueError as exc:
        raise ValidationError(f"the request body is not valid JSON ({exc}); send a JSON object") from None
    except RecursionError:
        raise ValidationError("the request body's JSON is nested too deeply; send a flatter JSON object") from None


def encode_json(prediction: Any) -> tuple[bytes, str]:
    """Default output_fn: JSON of the prediction made JSON-able."""
    from hubserve.models.jsonable import to_jsonable

    return json.dumps(to_jsonable(prediction)).encode(), "application/json"


def _normalise_output(output: Any, accept: str) -> tuple[bytes, str]:
    """output_fn may return a body, or (body, content_type) as the SageMaker toolkit allows."""
    content_type = accept if accept and accept != "*/*" else "application/json"
    if isinstance(output, tuple) and len(output) == 2:
        output, content_type = output
    if isinstance(output, str):
        output = output.encode()
    if not isinstance(output, (bytes, bytearray)):
        raise TypeError(
            f"output_fn must return bytes or str (or a (body, content_type) tuple), not {type(output).__name__}"
        )
    return bytes(output), str(content_type)
