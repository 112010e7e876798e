"""Model folders the integration tests need beyond the tiny task models."""

from __future__ import annotations

import shutil
import textwrap
from pathlib import Path

# A handler that misbehaves on request: crashes the replica, raises, sleeps, eats memory, or answers.
FAULTY_HANDLER = textwrap.dedent(
    '''
    import os
    import time

    from transformers import pipeline


    class EndpointHandler:
        def __init__(self, path=""):
            time.sleep(float(os.environ.get("TEST_INIT_SLEEP_S", "0")))
            self.pipe = pipeline("text-classification", model=path)

        def __call__(self, data):
            inputs = data["inputs"]
            if inputs == "crash":
                time.sleep(0.2)
                os._exit(17)
            if inputs == "boom":
                raise RuntimeError("boom requested by the test")
            if inputs == "slow":
                time.sleep(1.0)
            if inputs == "eat":
                hog = b"x" * (1600 * 1024 * 1024)  # written, so resident
                time.sleep(3.0)
                return {"ate": len(hog)}
            return {"pid": os.getpid(), "result": self.pipe(inputs)}
    '''
)


def faulty_handler_model(text_classification: Path, dst: Path) -> Path:
    """A copy of a text-classification folder with a handler.py that crashes or raises on demand."""
    if not dst.exists():
        shutil.copytree(text_classification, dst)
        (dst / "handler.py").write_text(FAULTY_HANDLER)
    return dst


# A no-op streaming handler: yields ``parts`` small JSON parts, ``delay_s`` apart, and writes how many it
# has produced to ``progress`` (a file), so a test can see it stop when the client leaves.
STREAMING_HANDLER = textwrap.dedent(
    '''
    import pathlib
    import time


    class EndpointHandler:
        def __init__(self, path=""):
            self.path = path

        def __call__(self, data):
            options = data["inputs"]
            count, delay = int(options.get("parts", 3)), float(options.get("delay_s", 0.0))
            progress = options.get("progress")

            def parts():
                for index in range(count):
                    if options.get("fail_after") == index:
                        raise RuntimeError(f"failed after {index} parts, as the test asked")
                    if progress:
                        pathlib.Path(progress).write_text(str(index + 1))
                    yield {"token": {"id": index, "text": f"t{index}"}}
                    time.sleep(delay)

            return parts()
    '''
)


def streaming_handler_model(dst: Path) -> Path:
    """A model folder whose only content is a handler.py that streams (no weights: it needs none)."""
    dst.mkdir(parents=True, exist_ok=True)
    (dst / "handler.py").write_text(STREAMING_HANDLER)
    return dst
