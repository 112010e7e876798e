"""A replica's start as numbered steps someone can watch: ``exporting to ONNX (step 1 of 4)``.

Loading a model can take minutes (an ONNX export, int8 quantization, ``auto``'s timing runs),
so the replica says which step it is on as each begins: ``worker/server.py`` appends them to its
phase file, the backend reads them while it waits for the replica, and control shows them as the
endpoint's reason and events. Steps are planned as soon as they are known, so the count is right
from the first report wherever the whole start is known up front (a one-step start reads without
a count: ``loading the model``).
"""

from __future__ import annotations

from collections.abc import Callable

LOADING = "loading the model"
EXPORTING = "exporting to ONNX"
WARMING_UP = "warming up: timing each runtime"
BUILDING = {"onnx": "optimizing the ONNX graph", "onnx-int8": "quantizing to int8"}  # a variant -> its step


class Progress:
    """The steps of one replica's start; ``report`` hears ``"<step> (step k of n)"`` as each begins."""

    def __init__(self, report: Callable[[str], None] | None = None) -> None:
        self._report = report
        self._steps: list[str] = []  # begun ones first, in order, then the planned ones
        self._begun = 0

    @property
    def begun(self) -> list[str]:
        """The steps begun so far, in order."""
        return self._steps[: self._begun]

    def plan(self, *steps: str, first: bool = False) -> None:
        """Steps still to come: after the planned ones, or (``first``) before them; known ones are kept."""
        new = [step for step in dict.fromkeys(steps) if step not in self._steps]
        at = self._begun if first else len(self._steps)
        self._steps[at:at] = new

    def begin(self, step: str) -> None:
        """``step`` begins (planned or not) and is reported; a step already begun is not reported again."""
        if step in self.begun:
            return
        if step in self._steps:
            self._steps.remove(step)
        self._steps.insert(self._begun, step)
        self._begun += 1
        total = len(self._steps)
        if self._report is not None:
            self._report(step if total == 1 else f"{step} (step {self._begun} of {total})")
