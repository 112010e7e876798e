"""A real `hubserve serve` started the safe way (token from a file, a public URL, an old world-readable
home), with an endpoint whose handler reports a secret environment variable; and a way to start others."""

from __future__ import annotations

import shutil
import tempfile
import textwrap
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.integration.conftest import RunningServer, launch, stop_server, wait_for_state, wait_healthy

TOKEN = "tok-9f3b7c1e-secret-admin"
SECRET_NAME = "HUBSERVE_TEST_API_KEY"
SECRET_VALUE = "sk-live-7d1a0c55e2b94f6e"
PUBLIC_URL = "https://models.example.com"
ENDPOINT = "secretive"

ENV_HANDLER = textwrap.dedent(
    '''
    import os


    class EndpointHandler:
        def __init__(self, path=""):
            pass

        def __call__(self, data):
            name = data["inputs"]
            if name == "boom":
                raise RuntimeError("the handler failed, as the test asked")
            return {"name": name, "value": os.environ.get(name)}
    '''
)


# The secrecy tests start servers with their own flags; the launcher is the integration tests' one.
Started = RunningServer
stop = stop_server


def env_handler_model(dst: Path) -> Path:
    """A model folder whose only content is a handler.py that answers with an environment variable."""
    dst.mkdir(parents=True, exist_ok=True)
    (dst / "handler.py").write_text(ENV_HANDLER)
    return dst


@pytest.fixture(scope="session")
def old_home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A home as an older hubserve (umask 022) left it: world-readable folder, logs and a stray file."""
    home = tmp_path_factory.mktemp("secrets-server") / "home"
    (home / "logs").mkdir(parents=True)
    home.chmod(0o755)
    (home / "logs").chmod(0o755)
    stray = home / "logs" / "old.log"
    stray.write_text("an old log line\n")
    stray.chmod(0o644)
    return home


@pytest.fixture(scope="session")
def token_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("token") / "admin.token"
    path.write_text(TOKEN + "\n")
    path.chmod(0o600)
    return path


@pytest.fixture(scope="session")
def secret_server(old_home: Path, token_file: Path) -> Iterator[Started]:
    started = wait_healthy(launch(old_home, "--token-file", str(token_file), "--public-url", PUBLIC_URL))
    yield started
    stop(started)


@pytest.fixture(scope="session")
def admin(secret_server: Started) -> Iterator[httpx.Client]:
    headers = {"Authorization": f"Bearer {TOKEN}"}
    with httpx.Client(base_url=secret_server.url, headers=headers, timeout=120) as client:
        yield client


@pytest.fixture(scope="session")
def model_folder() -> Iterator[Path]:
    """The handler's folder, where a replica running as an unprivileged user (server as root) can read it."""
    parent = Path(tempfile.mkdtemp(prefix="hubserve-secrecy-"))
    parent.chmod(0o755)
    folder = env_handler_model(parent / "model")
    folder.chmod(0o755)
    (folder / "handler.py").chmod(0o644)
    yield folder
    shutil.rmtree(parent, ignore_errors=True)


@pytest.fixture(scope="session")
def secret_endpoint(admin: httpx.Client, model_folder: Path) -> dict:
    """The endpoint with a secret, running; its describe body as created."""
    folder = model_folder
    spec = {
        "name": ENDPOINT,
        "model": {"source": str(folder), "task": "text-classification"},
        "custom_code": True,
        "env": {"PLAIN_SETTING": "visible"},
        "secrets": {SECRET_NAME: SECRET_VALUE},
    }
    response = admin.post("/v1/endpoints", json=spec)
    assert response.status_code == 201, response.text
    state = wait_for_state(admin, ENDPOINT, {"running", "failed"})
    assert state["state"] == "running", state
    return response.json()


def invoke_secret(admin: httpx.Client) -> str | None:
    response = admin.post(f"/endpoints/{ENDPOINT}", json={"inputs": SECRET_NAME})
    assert response.status_code == 200, response.text
    value: str | None = response.json()["value"]
    return value
