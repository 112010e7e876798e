"""The install stamp: whether `.venv` already holds what pyproject.toml and constraints.txt ask for.

scripts/setup.sh runs pip only when the stamp is missing or differs, so re-running the quickstart
(or scripts/check) starts at once when nothing changed. The stamp is a hash of the install's inputs:
pyproject.toml, constraints.txt and the venv's Python version; hubserve itself is installed
editable, so its source changing needs no reinstall. It is written only after pip succeeded.

    .venv/bin/python scripts/install_stamp.py check VENV    # exit 0: up to date; 1: install needed
    .venv/bin/python scripts/install_stamp.py write VENV    # after a successful install

Run it with the venv's own Python, so the version hashed is the one the packages were built for.
"""

from __future__ import annotations

import hashlib
import sys
from pathlib import Path

STAMP_NAME = ".hubserve-install-stamp"
INPUTS = ("pyproject.toml", "constraints.txt")


def digest(root: Path, python_version: str = sys.version) -> str:
    """A hash of the install's inputs under ``root`` and the Python version (a missing input counts as empty)."""
    hasher = hashlib.sha256()
    for name in INPUTS:
        path = root / name
        hasher.update(f"{name}\0".encode())
        hasher.update(path.read_bytes() if path.is_file() else b"")
        hasher.update(b"\0")
    hasher.update(python_version.encode())
    return hasher.hexdigest()


def is_current(venv: Path, root: Path, python_version: str = sys.version) -> bool:
    """True when ``venv`` was installed from exactly these inputs with this Python."""
    stamp = venv / STAMP_NAME
    return stamp.is_file() and stamp.read_text(encoding="utf-8").strip() == digest(root, python_version)


def write(venv: Path, root: Path, python_version: str = sys.version) -> None:
    """Record that ``venv`` now holds what the inputs under ``root`` ask for."""
    (venv / STAMP_NAME).write_text(digest(root, python_version) + "\n", encoding="utf-8")


def main(argv: list[str]) -> int:
    if len(argv) != 2 or argv[0] not in ("check", "write"):
        print("usage: install_stamp.py check|write VENV", file=sys.stderr)
        return 2
    venv, root = Path(argv[1]), Path(__file__).resolve().parent.parent
    if argv[0] == "check":
        return 0 if is_current(venv, root) else 1
    write(venv, root)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
