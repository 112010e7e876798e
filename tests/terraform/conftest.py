"""Terraform against a real `hubserve serve`: the `terraform` command, its CLI configuration and a server.

The CLI configuration is written into the test's own folder and named by TF_CLI_CONFIG_FILE, so no
terraform binary, ~/.terraformrc or TF_CLI_CONFIG_FILE the machine has is used: `dev_overrides`
points `hubserve/hubserve` at this environment's `terraform-provider-hubserve`.
"""

from __future__ import annotations

import dataclasses
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.integration.conftest import RunningServer, start_server, stop_server

CLI = Path(__file__).with_name("terraform_cli.py")


@dataclasses.dataclass
class Terraform:
    """``terraform ARGS`` in ``workdir`` with the test's CLI configuration; ``run`` returns the finished process."""

    workdir: Path
    env: dict[str, str]

    def run(self, *args: str, timeout: float = 600) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, str(CLI), *args],
            cwd=self.workdir,
            env=self.env,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )

    def expect(self, code: int, *args: str) -> str:
        """Run and insist on the exit code (``-detailed-exitcode``: 0 no changes, 2 changes); returns stdout."""
        done = self.run(*args)
        assert done.returncode == code, (
            f"terraform {' '.join(args)} exited {done.returncode}, wanted {code}:\n{done.stdout}\n{done.stderr}"
        )
        return done.stdout

    def write(self, text: str) -> None:
        (self.workdir / "main.tf").write_text(text)


def provider_dir() -> Path:
    """Where `pip install` put terraform-provider-hubserve: beside this Python."""
    folder = Path(sys.executable).parent
    assert (folder / "terraform-provider-hubserve").is_file(), f"terraform-provider-hubserve is not in {folder}"
    return folder


def cli_config(folder: Path) -> Path:
    path = folder / "terraform.rc"
    path.write_text(
        "provider_installation {\n"
        f'  dev_overrides {{\n    "hubserve/hubserve" = "{provider_dir()}"\n  }}\n'
        "  direct {}\n"
        "}\n"
    )
    return path


def terraform_in(folder: Path, home: Path) -> Terraform:
    folder.mkdir(parents=True, exist_ok=True)
    env = {key: value for key, value in os.environ.items() if not key.startswith(("TF_", "HUBSERVE_"))}
    env.update(
        {
            "TF_CLI_CONFIG_FILE": str(cli_config(folder)),
            "TF_IN_AUTOMATION": "1",
            "CHECKPOINT_DISABLE": "1",
            "HOME": str(home),
            "HF_HUB_OFFLINE": "1",
        }
    )
    return Terraform(folder, env)


@pytest.fixture(scope="module")
def tf_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningServer]:
    running = start_server(tmp_path_factory.mktemp("terraform") / "home")
    yield running
    stop_server(running)


@pytest.fixture(scope="module")
def tf_api(tf_server: RunningServer) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=tf_server.url, headers=tf_server.headers(), timeout=60) as client:
        yield client


@pytest.fixture
def terraform(tmp_path: Path) -> Terraform:
    return terraform_in(tmp_path / "config", tmp_path / "home")
