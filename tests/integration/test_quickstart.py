"""The README's first command: a real server, the real all-MiniLM-L6-v2, a real prediction."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path


def test_quickstart_prints_a_real_prediction_and_the_url(tmp_path: Path) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "hubserve", "quickstart", "--home", str(tmp_path / "home"), "--port", "0", "--exit"],
        capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    scores = {line.split(maxsplit=1)[1]: float(line.split()[0]) for line in done.stdout.splitlines() if re.match(r"^\s+-?\d\.\d{3}\s", line)}
    assert scores["A man is eating a piece of bread."] > scores["A man is riding a horse."] > scores["The sky is blue today."]
    assert re.search(r"Endpoint URL: http://127\.0\.0\.1:\d+/endpoints/minilm", done.stdout)
