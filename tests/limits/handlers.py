"""A custom handler that misbehaves on request: sleeps, spins, exits, or allocates past its memory."""

from __future__ import annotations

import shutil
import textwrap
from pathlib import Path

MISBEHAVING_HANDLER = textwrap.dedent(
    '''
    """Does what the request asks: {"do": "sleep" | "spin" | "exit" | "hog" | "grab" | "echo", ...}."""
    import os
    import time


    class EndpointHandler:
        def __init__(self, path=""):
            self.kept = []

        def __call__(self, data):
            do = data.get("do", "echo")
            if do == "sleep":
                time.sleep(float(data.get("seconds", 30)))
            elif do == "spin":
                until = time.monotonic() + float(data.get("seconds", 30))
                while time.monotonic() < until:
                    pass
            elif do == "exit":
                os._exit(3)
            elif do == "grab":  # one allocation of many GB at once: faster than any police tick
                self.kept.append(b"x" * (int(data.get("mb", 12288)) << 20))
            elif do == "hog":  # touch every page, a step at a time, so the resident size grows
                for _ in range(int(data.get("mb", 4096)) // 64):
                    self.kept.append(bytearray(b"x" * (64 << 20)))
                    time.sleep(float(data.get("pause", 0.05)))
            return {"echo": data.get("inputs"), "pid": os.getpid()}
    '''
)


def misbehaving_model(text_classification: Path, dst: Path) -> Path:
    """A copy of the tiny text-classification model whose handler.py misbehaves on request."""
    shutil.copytree(text_classification, dst)
    (dst / "handler.py").write_text(MISBEHAVING_HANDLER)
    return dst
