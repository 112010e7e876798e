"""A replica that serves a scikit-learn model runs without torch, even where torch is installed.

Some libraries import torch only because it is there: skops builds its trusted-type list from
every scikit-learn module, torch's array-API shim (``sklearn.externals.array_api_compat.torch``)
among them, and that imports torch (seconds and hundreds of MB). With torch unimportable they skip
it: the walk ignores modules that fail to import, and array-API checks find no torch to compare
with. A model that truly needs torch (skorch) fails to load, saying so.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from importlib.machinery import ModuleSpec
from types import ModuleType


class _NoTorch:
    """A meta path finder that refuses ``torch`` and its submodules (nothing is put in sys.modules)."""

    def find_spec(self, name: str, path: Sequence[str] | None = None, target: ModuleType | None = None) -> ModuleSpec | None:
        if name == "torch" or name.startswith("torch."):
            raise ModuleNotFoundError(f"No module named {name!r}: a scikit-learn replica runs without torch", name=name)
        return None


def forbid_torch() -> None:
    """Make ``import torch`` fail in this process from now on (idempotent); torch must not be imported yet."""
    if any(isinstance(finder, _NoTorch) for finder in sys.meta_path):
        return
    if "torch" in sys.modules:
        raise RuntimeError("torch is already imported: a scikit-learn replica must start without it")
    sys.meta_path.insert(0, _NoTorch())
