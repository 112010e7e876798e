"""The web console's static files (HTML, CSS, ES modules), served by `hubserve.api.console`.

Plain files with no build step: the package ships them as package data.
"""

from __future__ import annotations

from pathlib import Path

STATIC_DIR = Path(__file__).parent / "static"
