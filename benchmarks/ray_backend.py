"""hubserve on Ray against hubserve's local backend and against Ray Serve, one run, one model.

Model: a full-size DistilBERT SST-2-shaped classifier (random weights, the real BERT-uncased
tokenizer), a 128-token request. Three systems, measured one after the other:
  hubserve local  ``hubserve serve`` (the default backend: replicas forked from a local zygote)
  hubserve ray    ``hubserve serve --backend ray --ray-address`` on a one-node Ray cluster started
                  here with ``ray start --head --num-cpus=2`` (the whole machine)
  ray serve       Ray Serve on the same cluster (baselines/ray_serve_pipeline.py): one deployment
                  around the transformers pipeline, batching up to 32 requests for at most 10 ms
Rows, each system with one 2-CPU replica: c=1 latency (p50, p99 of ``--requests``), c=32
throughput and p99 over ``--duration`` seconds, and the cold start from zero: a request to an
endpoint (deployment) with no replica, until its answer, ``--rounds`` times (hubserve: a
serverless endpoint scaled to zero by its API; Ray Serve: autoscaling 0..1 that is waited down
to zero). The issue's targets are printed as PASS/FAIL: hubserve on Ray no slower than Ray Serve
on any row, and its cold start under 2 s.

    flock /tmp/hubserve-bench.lock .venv/bin/python benchmarks/ray_backend.py [--requests 100] \
        [--duration 15] [--rounds 5] [--docs docs/benchmarks.md | --no-docs]
"""

from __future__ import annotations

import argparse
import contextlib
import os
import re
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import (
    REPO_DIR,
    build_distilbert_sst2,
    endpoint,
    free_port,
    in_child,
    machine_line,
    markdown_table,
    print_table,
    replace_section,
    run_loadgen,
    running,
    text_of_tokens,
    write_body,
)

os.environ["HUBSERVE_REPLICA_USER"] = ""  # the fixtures are in a private temp folder (see common.py)
RAY = str(Path(sys.executable).with_name("ray"))
BASELINE = Path(__file__).resolve().parent / "baselines" / "ray_serve_pipeline.py"
TASK = "text-classification"
SYSTEMS = ("hubserve local", "hubserve ray", "ray serve")


class RayCluster:
    """``with RayCluster(tmp) as address:`` a one-node Ray cluster in a private folder, stopped on exit."""

    def __init__(self, tmp: Path) -> None:
        self.dir = Path(tempfile.mkdtemp(prefix="ray-", dir="/tmp"))  # Ray's socket paths must stay short
        self.env = {**os.environ, "RAY_USAGE_STATS_ENABLED": "0", "HOME": str(self.dir), "TMPDIR": str(self.dir)}
        self.port = free_port()

    def __enter__(self) -> str:
        started = subprocess.run(
            [RAY, "start", "--head", f"--port={self.port}", "--num-cpus=2", "--include-dashboard=false",
             "--node-ip-address=127.0.0.1", f"--temp-dir={self.dir}", "--disable-usage-stats",
             f"--dashboard-port={free_port()}", f"--ray-client-server-port={free_port()}",
             f"--dashboard-agent-listen-port={free_port()}", f"--metrics-export-port={free_port()}"],
            env=self.env, capture_output=True, text=True, timeout=180, check=False,
        )  # fmt: skip
        if started.returncode != 0:
            raise RuntimeError(f"ray start failed: {started.stdout[-1500:]} {started.stderr[-1500:]}")
        return f"127.0.0.1:{self.port}"

    def __exit__(self, *exc: object) -> None:
        """SIGKILL this cluster's processes only (``ray stop`` would end every Ray instance on the machine)."""
        ours = re.compile(rf"{re.escape(str(self.dir))}/|[=\s][\w.]+:{self.port}(?!\d)")
        for pid in [int(p.name) for p in Path("/proc").iterdir() if p.name.isdigit()]:
            try:
                cmdline = (Path("/proc") / str(pid) / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
            except OSError:
                continue
            if pid != os.getpid() and ours.search(cmdline):
                _kill(pid)
        shutil.rmtree(self.dir, ignore_errors=True)


def _kill(pid: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.kill(pid, signal.SIGKILL)


def hubserve_argv(home: Path, port: int, ray_address: str | None) -> list[str]:
    argv = [sys.executable, "-m", "hubserve", "serve", "--port", str(port), "--home", str(home)]
    return [*argv, "--backend", "ray", "--ray-address", ray_address] if ray_address else argv


def dedicated_spec(model_dir: Path) -> dict[str, Any]:
    compute = {"type": "dedicated", "instance": "cpu-medium", "min_replicas": 1, "max_replicas": 1}
    return {"name": "sst2", "model": {"source": str(model_dir), "task": TASK}, "compute": compute}


def serverless_spec(model_dir: Path) -> dict[str, Any]:
    compute = {"type": "serverless", "memory_mb": 4096, "max_concurrency": 8}  # 4096 MB: 2 vCPUs (1 per 1769 MB)
    return {"name": "sst2-cold", "model": {"source": str(model_dir), "task": TASK}, "compute": compute}


def load_rows(url: str, body: Path, args: argparse.Namespace) -> dict[str, float]:
    """c=1 latency and c=32 throughput against ``url`` (warmed up first)."""
    run_loadgen(url, body, 4, requests=40)
    c1 = run_loadgen(url, body, 1, requests=args.requests, warmup=5).latency()
    c32 = run_loadgen(url, body, 32, duration=args.duration)  # no warm-up: idle keep-alives would be closed
    return {"c1_p50": c1.p50, "c1_p99": c1.p99, "c32_rps": c32.throughput, "c32_p99": c32.latency().p99,
            "errors": float(c32.errors)}  # fmt: skip


def hubserve_cold(base: str, body: dict[str, Any], rounds: int) -> list[float]:
    """A scaled-to-zero serverless endpoint's first request, ``rounds`` times (ms)."""
    samples = []
    with httpx.Client(base_url=base, timeout=300) as http:
        http.post("/endpoints/sst2-cold", json=body).raise_for_status()  # page cache warm, as after any first start
        for _ in range(rounds):
            http.post("/v1/endpoints/sst2-cold/scale-to-zero").raise_for_status()
            started = time.perf_counter()
            response = http.post("/endpoints/sst2-cold", json=body)
            samples.append((time.perf_counter() - started) * 1000)
            response.raise_for_status()
            assert response.headers["x-cold-start"] == "true", "the request did not start a replica"
    return samples


def measure_hubserve(tmp: Path, model_dir: Path, body_file: Path, body: dict[str, Any], args: argparse.Namespace,
                     ray_address: str | None) -> dict[str, Any]:  # fmt: skip
    port = free_port()
    name = "ray" if ray_address else "local"
    base = f"http://127.0.0.1:{port}"
    argv = hubserve_argv(tmp / f"home-{name}", port, ray_address)
    with running(argv, f"{base}/health", log=tmp / f"hubserve-{name}.log"):
        with endpoint(base, dedicated_spec(model_dir)) as url:
            rows = load_rows(url, body_file, args)
        with endpoint(base, serverless_spec(model_dir)):
            rows["cold"] = hubserve_cold(base, body, args.rounds)
    return rows


def measure_ray_serve(tmp: Path, model_dir: Path, body_file: Path, body: dict[str, Any], args: argparse.Namespace,
                      ray_address: str, env: dict[str, str]) -> dict[str, Any]:  # fmt: skip
    def serve(*extra: str) -> tuple[list[str], str, str]:
        port, control = free_port(), free_port()
        argv = [sys.executable, str(BASELINE), "--address", ray_address, "--model-dir", str(model_dir),
                "--port", str(port), "--control-port", str(control), *extra]  # fmt: skip
        return argv, f"http://127.0.0.1:{port}/predict", f"http://127.0.0.1:{control}/replicas"

    argv, url, control = serve()
    with _env(env), running(argv, control, log=tmp / "ray-serve.log"):
        _wait_replicas(control, 1)
        rows = load_rows(url, body_file, args)
    argv, url, control = serve("--scale-to-zero")
    samples = []
    with _env(env), running(argv, control, log=tmp / "ray-serve-cold.log"), httpx.Client(timeout=300) as http:
        http.post(url, json=body).raise_for_status()  # page cache warm, as for hubserve
        for _ in range(args.rounds):
            _wait_replicas(control, 0)
            started = time.perf_counter()
            response = http.post(url, json=body)
            samples.append((time.perf_counter() - started) * 1000)
            response.raise_for_status()
    rows["cold"] = samples
    return rows


class _env:
    """Run a child with Ray's private HOME and TMPDIR (``running`` inherits this process's environment)."""

    def __init__(self, env: dict[str, str]) -> None:
        self.env, self.saved = env, dict(os.environ)

    def __enter__(self) -> None:
        os.environ.update({k: self.env[k] for k in ("HOME", "TMPDIR", "RAY_USAGE_STATS_ENABLED")})

    def __exit__(self, *exc: object) -> None:
        os.environ.clear()
        os.environ.update(self.saved)


def _wait_replicas(control: str, count: int, timeout: float = 180) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if httpx.get(control, timeout=10).json()["replicas"] == count:
            return
        time.sleep(0.2)
    raise RuntimeError(f"Ray Serve did not reach {count} replicas in {timeout:.0f}s")


def report(results: dict[str, dict[str, Any]], args: argparse.Namespace, size_mb: float) -> str:
    def cold(name: str) -> float:
        return statistics.median(results[name]["cold"])

    header = ["system", "c=1 p50 ms", "c=1 p99 ms", "c=32 req/s", "c=32 p99 ms", "cold start p50 ms", "cold min-max ms"]
    rows = [
        [name, f"{r['c1_p50']:.1f}", f"{r['c1_p99']:.1f}", f"{r['c32_rps']:.1f}", f"{r['c32_p99']:.0f}",
         f"{cold(name):.0f}", f"{min(r['cold']):.0f}-{max(r['cold']):.0f}"]
        for name, r in results.items()
    ]  # fmt: skip
    hub, peer, local = results["hubserve ray"], results["ray serve"], results["hubserve local"]
    checks = [
        ("c=1 p50, ray serve / hubserve ray", peer["c1_p50"] / hub["c1_p50"], peer["c1_p50"] >= hub["c1_p50"]),
        ("c=1 p99, ray serve / hubserve ray", peer["c1_p99"] / hub["c1_p99"], peer["c1_p99"] >= hub["c1_p99"]),
        ("c=32 req/s, hubserve ray / ray serve", hub["c32_rps"] / peer["c32_rps"], hub["c32_rps"] >= peer["c32_rps"]),
        ("c=32 p99, ray serve / hubserve ray", peer["c32_p99"] / hub["c32_p99"], peer["c32_p99"] >= hub["c32_p99"]),
        ("cold start, ray serve / hubserve ray", cold("ray serve") / cold("hubserve ray"),
         cold("ray serve") >= cold("hubserve ray")),
        ("cold start of hubserve ray under 2 s", cold("hubserve ray") / 1000, cold("hubserve ray") < 2000),
        ("c=32 req/s, hubserve ray / hubserve local", hub["c32_rps"] / local["c32_rps"], None),
        ("c=1 p50, hubserve local / hubserve ray", local["c1_p50"] / hub["c1_p50"], None),
    ]  # fmt: skip
    print(f"\nDistilBERT SST-2-shaped ({size_mb:.0f} MB), 128-token request, one 2-CPU replica each; "
          f"{args.requests} requests at c=1, {args.duration:.0f} s at c=32, {args.rounds} cold starts\n")  # fmt: skip
    print_table(header, rows, left=1)
    print()
    for label, ratio, ok in checks:
        verdict = "" if ok is None else ("PASS" if ok else "FAIL")
        print(f"{label:<46} {ratio:6.2f}  {verdict}")
    errors = {name: int(r["errors"]) for name, r in results.items() if r["errors"]}
    if errors:
        print(f"\nerrors at c=32 (non-200 answers or failures): {errors}")
    check_rows = [(label, f"{ratio:.2f}", "" if ok is None else ("PASS" if ok else "FAIL")) for label, ratio, ok in checks]
    return "\n\n".join([
        (f"Measured {machine_line()}; Ray {_version('ray')}. Command: `flock /tmp/hubserve-bench.lock .venv/bin/python "
        f"benchmarks/ray_backend.py --requests {args.requests} --duration {args.duration:.0f} --rounds {args.rounds}`."),
        markdown_table(header, rows, align=lambda i: "---" if i == 0 else "---:"),
        markdown_table(["ratio", "value", "target"], check_rows, align=lambda i: "---" if i == 0 else "---:"),
    ])  # fmt: skip


def _version(name: str) -> str:
    import importlib.metadata

    return importlib.metadata.version(name)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--requests", type=int, default=100)
    parser.add_argument("--duration", type=float, default=15.0)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--docs", type=Path, default=REPO_DIR / "docs" / "benchmarks.md")
    parser.add_argument("--no-docs", action="store_true")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as name:
        tmp = Path(name)
        model_dir = in_child(build_distilbert_sst2, tmp / "distilbert-sst2")
        size_mb = sum(f.stat().st_size for f in model_dir.glob("*.safetensors")) / 1e6
        body = {"inputs": text_of_tokens(model_dir, 128)}
        body_file = write_body(tmp / "body.json", body)
        results: dict[str, dict[str, Any]] = {}
        print("measuring hubserve on the local backend", flush=True)
        results["hubserve local"] = measure_hubserve(tmp, model_dir, body_file, body, args, None)
        cluster = RayCluster(tmp)
        with cluster as address:
            print(f"measuring hubserve on Ray ({address})", flush=True)
            results["hubserve ray"] = measure_hubserve(tmp, model_dir, body_file, body, args, address)
            print("measuring Ray Serve", flush=True)
            results["ray serve"] = measure_ray_serve(tmp, model_dir, body_file, body, args, address, cluster.env)
        section = report(results, args, size_mb)
    if not args.no_docs:
        replace_section(args.docs, "ray-backend", section, "## hubserve on Ray against Ray Serve")
        print(f"\nwrote the section ray-backend of {args.docs}")


if __name__ == "__main__":
    main()
