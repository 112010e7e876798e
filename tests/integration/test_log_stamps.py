"""Through the real server: what a replica prints while loading, whoever prints it, has the real time.

A custom handler's ``__init__`` (run while the replica loads) writes through transformers' logger
(whose handler the zygote made before the fork, holding the zygote's stderr), ``warnings``, plain
``logging``, ``print``, a raw ``os.write`` to fds 1 and 2 (as C code does) and a child process.
Every line must come back from ``GET /v1/endpoints/{name}/logs?tail=N`` and ``hubserve endpoint
logs --tail`` with a real stamp, in the order written; none may read ``0000-00-00``.
"""

from __future__ import annotations

import datetime as dt
import subprocess
import sys
from collections.abc import Iterator

import httpx
import pytest

from hubserve.logs import read_logs
from tests.integration.conftest import RunningServer, wait_for_state

NAME = "stamps"
MARKERS = ["via-transformers", "via-warnings", "via-logging", "via-print", "via-fd2", "via-fd1", "via-child"]

HANDLER = '''
import logging, os, subprocess, sys, time, warnings
from transformers.utils import logging as hf_logging


class EndpointHandler:
    def __init__(self, path=""):
        pause = lambda: time.sleep(0.05)  # lines of different paths are stamped by different writers
        hf_logging.get_logger("transformers.stamps_test").warning("mark via-transformers"); pause()
        warnings.warn("mark via-warnings"); pause()
        logging.getLogger("some.library").warning("mark via-logging"); pause()
        print("mark via-print", flush=True); pause()
        os.write(2, b"mark via-fd2\\n"); pause()
        os.write(1, b"mark via-fd1\\n"); pause()
        subprocess.run([sys.executable, "-c", "print('mark via-child')"], check=True); pause()

    def __call__(self, data):
        return {"ok": True}
'''


@pytest.fixture(scope="module")
def started_at(api: httpx.Client, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    folder = tmp_path_factory.mktemp("stamps-model")
    (folder / "handler.py").write_text(HANDLER)
    before = (dt.datetime.now(dt.timezone.utc) - dt.timedelta(seconds=1)).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"
    spec = {"name": NAME, "model": {"source": str(folder), "task": "text-classification"}, "custom_code": True}
    assert api.post("/v1/endpoints", json=spec).status_code == 201
    assert wait_for_state(api, NAME, {"running", "failed"})["state"] == "running"
    yield before
    api.delete(f"/v1/endpoints/{NAME}")


def _marked(lines: list[dict]) -> list[tuple[str, str]]:
    """(marker, time) of each line holding a marker, in the order given."""
    found = []
    for line in lines:
        for marker in MARKERS:
            if line["message"].endswith(f"mark {marker}"):  # not the source line a warning quotes
                found.append((marker, line["time"]))
    return found


def test_every_loading_line_has_a_real_stamp_in_order(api: httpx.Client, started_at: str) -> None:
    body = api.get(f"/v1/endpoints/{NAME}/logs", params={"tail": 60}).json()
    lines = body["lines"]
    assert all(not line["time"].startswith("0000") for line in lines), lines
    assert [line["time"] for line in lines] == sorted(line["time"] for line in lines)
    marked = _marked(lines)
    assert [marker for marker, _ in marked] == MARKERS, lines  # each once, on its own line, in order
    now = api.get(f"/v1/endpoints/{NAME}/logs", params={"tail": 1}).json()["lines"][-1]["time"]
    assert all(started_at <= stamp <= now for _, stamp in marked), (started_at, marked, now)
    streams = {marker: line["stream"] for line in lines for marker, _ in _marked([line])}
    assert streams["via-fd1"] == "stdout" and streams["via-fd2"] == "stderr" and streams["via-print"] == "stdout"
    assert streams["via-transformers"] == "stderr" and streams["via-warnings"] == "stderr"


def test_the_replica_log_file_has_no_unstamped_line(server: RunningServer, started_at: str) -> None:
    folder = server.home / "logs" / NAME
    for path in folder.glob("*.log"):
        text = path.read_text()
        unstamped = [line for line in text.splitlines() if line and not line[:4].isdigit()]
        assert not unstamped, (path.name, unstamped)
    assert all(line.stream != "raw" for line in read_logs(folder, tail=1000))


def test_cli_tail_shows_them_stamped(server: RunningServer, started_at: str) -> None:
    command = [sys.executable, "-m", "hubserve", "--url", server.url, "--token", server.token,
               "endpoint", "logs", NAME, "--tail", "60"]  # fmt: skip
    printed = subprocess.run(command, capture_output=True, text=True, timeout=60)
    assert printed.returncode == 0, printed.stderr
    rows = [row for row in printed.stdout.splitlines() if any(row.endswith(f"mark {m}") for m in MARKERS)]
    assert [next(m for m in MARKERS if f"mark {m}" in row) for row in rows] == MARKERS, printed.stdout
    assert all(row[:4].isdigit() and row[:4] != "0000" for row in rows), rows
