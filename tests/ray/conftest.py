"""A real two-node Ray cluster on 127.0.0.1 (``ray start``), and a hubserve server on it, per module."""

from __future__ import annotations

import contextlib
import dataclasses
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.integration.conftest import TOKEN, RunningServer, free_port, launch, stop_server, wait_healthy

pytest.importorskip("ray", reason="the Ray backend needs ray installed (pip install 'ray[default]')")

RAY = str(Path(sys.executable).with_name("ray"))


@dataclasses.dataclass
class RayCluster:
    address: str
    temp_dir: Path
    second_node_port: int  # the second node's node-manager port: how its raylet is found to kill it
    env: dict[str, str]
    num_cpus: int = 2  # logical CPUs of each node
    memory: int | None = None  # bytes of Ray's memory resource per node; None: Ray's default (most of the machine's)

    def node_resources(self) -> list[str]:
        return [f"--num-cpus={self.num_cpus}", *([f"--memory={self.memory}"] if self.memory else [])]

    def ray(self, *args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
        return subprocess.run([RAY, *args], env=self.env, capture_output=True, text=True, timeout=timeout, check=False)

    def add_node(self, port: int) -> None:
        for _attempt in range(3):  # the head's GCS sometimes refuses the first connection while it starts
            started = self.ray(
                "start", f"--address={self.address}", *self.node_resources(), "--node-ip-address=127.0.0.1",
                f"--node-manager-port={port}", "--disable-usage-stats", *_own_ports(),
            )  # fmt: skip
            if started.returncode == 0:
                return
            time.sleep(3)
        raise AssertionError(started.stdout[-2000:] + started.stderr[-2000:])

    def stop(self) -> None:
        """SIGKILL this cluster's processes only: ``ray stop`` would end every Ray instance on the machine."""
        port = self.address.rsplit(":", 1)[1]  # the head's GCS port, in every command line that names the cluster
        ours = re.compile(rf"{re.escape(str(self.temp_dir))}/|[=\s][\w.]+:{port}(?!\d)")
        for pid in _pids():
            if pid != os.getpid() and ours.search(_cmdline(pid)):
                _kill_tree(pid)

    def kill_second_node(self) -> None:
        """SIGKILL the second node's raylet and everything it started (its workers, the agent, the zygote, replicas)."""
        marker = f"--node_manager_port={self.second_node_port}"
        for pid in _pids():
            if marker in _cmdline(pid) and "raylet" in _cmdline(pid):
                _kill_tree(pid)


def _own_ports() -> list[str]:
    """Free ports for the components that default to fixed ones, so clusters of parallel test runs never clash."""
    return [f"--dashboard-agent-listen-port={free_port()}", f"--metrics-export-port={free_port()}"]


def _pids() -> list[int]:
    return [int(name) for name in os.listdir("/proc") if name.isdigit()]


def _cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        return ""


def _children(pid: int) -> list[int]:
    found = []
    for other in _pids():
        try:
            stat = Path(f"/proc/{other}/stat").read_text()
        except OSError:
            continue
        if int(stat.rsplit(")", 1)[1].split()[1]) == pid:
            found.append(other)
    return found


def _kill_tree(pid: int) -> None:
    for child in _children(pid):
        _kill_tree(child)
    try:
        os.kill(pid, 9)
    except ProcessLookupError:
        pass


@contextlib.contextmanager
def running_cluster(num_cpus: int = 2, memory: int | None = None, *, prestart: bool = True) -> Iterator[RayCluster]:
    """A head and a second node, ``num_cpus`` logical CPUs and ``memory`` bytes each, in a private temp dir.

    ``prestart=False``: no worker process per logical CPU when the first driver connects (what a node of
    many logical CPUs on two real cores needs).
    """
    temp_dir = Path(tempfile.mkdtemp(prefix="ray-", dir="/tmp"))  # Ray's socket paths must stay short
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "RAY_USAGE_STATS_ENABLED": "0", "TOKENIZERS_PARALLELISM": "false",
           "HOME": str(temp_dir), "TMPDIR": str(temp_dir)}  # fmt: skip  # no ~/.ray/auth_token of another Ray instance is sent; node caches go with the cluster
    if not prestart:
        env["RAY_prestart_worker_first_driver"] = "0"
    port = free_port()
    cluster = RayCluster(f"127.0.0.1:{port}", temp_dir, free_port(), env, num_cpus, memory)
    head = cluster.ray(
        "start", "--head", f"--port={port}", *cluster.node_resources(), "--include-dashboard=false", "--node-ip-address=127.0.0.1",
        f"--temp-dir={temp_dir}", "--disable-usage-stats", f"--dashboard-port={free_port()}",
        f"--ray-client-server-port={free_port()}", *_own_ports(),
    )  # fmt: skip
    if head.returncode != 0:
        cluster.stop()
        pytest.skip(f"ray start --head failed: {head.stdout[-1000:]} {head.stderr[-1000:]}")
    try:
        cluster.add_node(cluster.second_node_port)
        yield cluster
    finally:
        cluster.stop()
        shutil.rmtree(temp_dir, ignore_errors=True)


@pytest.fixture(scope="module")
def ray_cluster() -> Iterator[RayCluster]:
    with running_cluster() as cluster:
        yield cluster


@pytest.fixture(scope="module")
def data_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A storage root of the server: batch jobs read and write under it."""
    return tmp_path_factory.mktemp("ray-data")


@pytest.fixture(scope="module")
def ray_server(
    ray_cluster: RayCluster, data_root: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[RunningServer]:
    home = tmp_path_factory.mktemp("ray-server") / "home"
    env = {
        "HUBSERVE_REPLICA_USER": "",
        "RAY_USAGE_STATS_ENABLED": "0",
        "HUBSERVE_STORAGE_ROOTS": json.dumps([str(data_root)]),
    }
    server = launch(
        home, "--token", TOKEN, "--backend", "ray", "--ray-address", ray_cluster.address, env=env, token=TOKEN
    )
    yield wait_healthy(server, timeout=120)
    stop_server(server)


@pytest.fixture(scope="module")
def rapi(ray_server: RunningServer) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=ray_server.url, headers=ray_server.headers(), timeout=120) as client:
        yield client
