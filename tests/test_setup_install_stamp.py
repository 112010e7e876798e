"""scripts/install_stamp.py: scripts/setup.sh skips pip while pyproject.toml, constraints.txt and the
Python version are what the venv was installed from (issue 14: a re-run reinstalled every time)."""

from __future__ import annotations

import importlib.util
import shutil
import subprocess
import sys
from pathlib import Path
from types import ModuleType

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "scripts" / "install_stamp.py"


def _stamp() -> ModuleType:
    spec = importlib.util.spec_from_file_location("install_stamp", SCRIPT)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_stamp_follows_each_input(tmp_path: Path) -> None:
    stamp = _stamp()
    root, venv = tmp_path / "repo", tmp_path / "repo" / ".venv"
    venv.mkdir(parents=True)
    shutil.copy(ROOT / "pyproject.toml", root)
    shutil.copy(ROOT / "constraints.txt", root)
    assert not stamp.is_current(venv, root)  # never installed
    stamp.write(venv, root)
    assert (venv / ".hubserve-install-stamp").is_file() and stamp.is_current(venv, root)
    assert not stamp.is_current(venv, root, python_version="3.12.1 (other build)")
    (root / "constraints.txt").write_text("torch==9.9.9\n")
    assert not stamp.is_current(venv, root)
    stamp.write(venv, root)
    (root / "pyproject.toml").write_text((ROOT / "pyproject.toml").read_text() + "\n# a new dependency\n")
    assert not stamp.is_current(venv, root)


def test_setup_checks_and_writes_through_the_command(tmp_path: Path) -> None:
    """What setup.sh runs: `check VENV` exits 1 until `write VENV`, then 0."""
    venv = tmp_path / "venv"
    venv.mkdir()

    def run(action: str) -> int:
        return subprocess.run([sys.executable, str(SCRIPT), action, str(venv)], check=False, timeout=60).returncode

    assert run("check") == 1
    assert run("write") == 0
    assert run("check") == 0
    (venv / ".hubserve-install-stamp").write_text("stale\n")
    assert run("check") == 1


def test_setup_sh_uses_the_stamp_and_shows_progress() -> None:
    text = (ROOT / "scripts" / "setup.sh").read_text()
    assert "install_stamp.py check .venv" in text and "install_stamp.py write .venv" in text
    assert "--quiet" not in text  # pip's own progress shows
