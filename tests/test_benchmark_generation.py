"""benchmarks/generation.py's own parts, fast: the stream parsers, the in-process token timer on a tiny
model, the hand-built FastAPI streaming server for real, the targets and the docs section.

The full benchmark needs a GPT-2-small-sized model and minutes; these check that what it measures is
counted right (every generated token timed once, none lost to an early end of sequence) in seconds.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import pytest

BENCH_DIR = Path(__file__).resolve().parents[1] / "benchmarks"
sys.path.insert(0, str(BENCH_DIR))

import common  # noqa: E402 - from benchmarks/, after the path is set
import generation  # noqa: E402
import tiny_models  # noqa: E402 - tests/, on the path through conftest
from generation import FASTAPI, HUBSERVE, IN_PROCESS, Plan, Report, Row, Stream  # noqa: E402


def _tgi_token(index: int, final: bool = False) -> str:
    event = {"index": index, "token": {"id": 7, "text": " a", "logprob": -0.5, "special": False},
             "generated_text": "a a" if final else None,
             "details": {"finish_reason": "length", "generated_tokens": index} if final else None}  # fmt: skip
    return "data:" + json.dumps(event)


def test_tgi_events_count_one_token_each_and_the_finish() -> None:
    stream = Stream(started=0.0)
    for line in [_tgi_token(1), "", ": ping", _tgi_token(2), "", _tgi_token(3, final=True)]:
        stream.feed(line, generation.parse_tgi)
    assert (stream.tokens, len(stream.times), stream.finish, stream.error) == (3, 3, "length", None)


def test_tgi_last_event_without_a_token_is_not_timed_and_its_count_is_taken() -> None:
    stream = Stream(started=0.0)
    last = {"index": 3, "token": generation.TGI_NO_TOKEN, "generated_text": "a a",
            "details": {"finish_reason": "length", "generated_tokens": 2, "seed": None}}  # fmt: skip
    for line in [_tgi_token(1), _tgi_token(2), "data:" + json.dumps(last)]:
        stream.feed(line, generation.parse_tgi)
    assert (stream.tokens, len(stream.times), stream.finish) == (2, 2, "length")


def test_tgi_error_event_and_a_non_stream_answer_are_errors() -> None:
    failed = Stream(started=0.0)
    failed.feed('data: {"error": "generation failed", "error_type": "generation"}', generation.parse_tgi)
    assert failed.error == "error event: generation generation failed"
    whole = Stream(started=0.0)
    whole.feed('data: [{"generated_text": "a b c"}]', generation.parse_tgi)
    assert whole.error is not None and whole.error.startswith("not a TGI stream event")


def test_fastapi_events_time_chunks_and_take_the_reported_count() -> None:
    stream = Stream(started=0.0)
    for line in ['data: {"text": "the "}', 'data: {"text": "movie "}', 'data: {"generated_tokens": 5}', "data: [DONE]"]:
        stream.feed(line, generation.parse_fastapi)
    assert (len(stream.times), stream.tokens, stream.finish) == (2, 5, "length")


@pytest.fixture(scope="module")
def tiny_causal_lm(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny GPT-2 that has an EOS token (SEP): the benchmark must run past it anyway."""
    return tiny_models.build_text_generation(tmp_path_factory.mktemp("bench-gen") / "gpt2")


def test_in_process_times_every_new_token_and_never_stops_early(tiny_causal_lm: Path) -> None:
    plan = Plan(new_tokens=12, requests=2, warmup=1)
    out = generation.measure_in_process(str(tiny_causal_lm), "the movie was quiet", plan, None)
    assert out[HUBSERVE] == []
    streams = [Stream(**s) for s in out[IN_PROCESS]]
    assert [(s.tokens, len(s.times)) for s in streams] == [(12, 12), (12, 12)]
    row = generation.sequential_row(IN_PROCESS, streams)
    assert row.ttft().n == 2 and row.inter_token().n == 22 and row.tokens_per_s > 0


def test_fastapi_streaming_baseline_streams_every_token_over_http(tiny_causal_lm: Path, tmp_path: Path) -> None:
    port = common.free_port()
    script = BENCH_DIR / "baselines" / "fastapi_streaming.py"
    argv = [sys.executable, str(script), "--model-dir", str(tiny_causal_lm), "--port", str(port)]
    plan = Plan(new_tokens=10)
    body = generation.request_body("the movie was quiet", plan)
    with common.running(argv, f"http://127.0.0.1:{port}/health", log=tmp_path / "fastapi.log", timeout=120):
        streams, wall = generation.stream_load(
            f"http://127.0.0.1:{port}/generate_stream", body, generation.parse_fastapi, 2, 3
        )
    assert [s.error for s in streams] == [None, None, None]
    assert all(s.tokens == 10 and s.times for s in streams)
    assert Row(FASTAPI, 2, streams, wall).tokens_per_s > 0


def _row(system: str, concurrency: int, ttft_ms: float, gap_ms: float, tokens: int, wall_s: float) -> Row:
    times = [ttft_ms / 1000 + i * gap_ms / 1000 for i in range(tokens)]
    return Row(system, concurrency, [Stream(started=0.0, times=times, tokens=tokens, ended=times[-1])], wall_s)


def test_targets_are_judged_from_the_same_run_and_the_docs_section_is_replaced(tmp_path: Path) -> None:
    report = Report(prompt_tokens=128)
    report.rows = [
        _row(IN_PROCESS, 1, 100.0, 20.0, 128, 2.64),  # 48.5 tokens/s
        _row(HUBSERVE, 1, 103.0, 21.0, 128, 2.80),
        _row(HUBSERVE, 32, 900.0, 100.0, 128, 0.62),  # 206 tokens/s: 4.2x in-process
        _row(FASTAPI, 32, 3000.0, 600.0, 128, 1.60),  # 80 tokens/s: hubserve 2.6x
    ]
    checks = generation.checks_for(report)
    assert [c.ok for c in checks] == [True, True, True, False]
    assert checks[0].value == "3.00 ms"

    doc = tmp_path / "benchmarks.md"
    doc.write_text("# Benchmarks\n\n## Earlier\n\nuntouched\n")
    for _ in range(2):
        text = generation.markdown(report, checks, Plan(), ".venv/bin/python benchmarks/generation.py")
        common.replace_section(doc, "generation", text, generation.HEADING)
    written = doc.read_text()
    assert written.startswith("# Benchmarks\n\n## Earlier\n\nuntouched\n")
    assert written.count(generation.HEADING) == 1 and written.count("<!-- generation:start -->") == 1
    assert "| hubserve | 32 | 1/1 |" in written and "FAIL" in written


def test_quick_plan_is_short_and_bad_lengths_are_refused(capsys: pytest.CaptureFixture[str]) -> None:
    _, plan = generation.parse_args(["--quick", "--no-docs"])
    assert (plan.prompt_tokens, plan.new_tokens, plan.requests, plan.rounds) == (32, 32, 3, 1)
    with pytest.raises(SystemExit):
        generation.parse_args(["--prompt-tokens", "400", "--new-tokens", "200"])
    assert "at most 512" in capsys.readouterr().err


def test_others_meter_counts_cpu_used_outside_this_process_tree() -> None:
    """A busy process that is not ours (orphaned: its parent exits at once) shows up; the benchmark warns on it."""
    busy = "import time\nt = time.time()\nwhile time.time() - t < 1.0: pass"
    orphan = f"import subprocess, sys; subprocess.Popen([sys.executable, '-c', {busy!r}])"
    with common.others_meter() as others:
        subprocess.run([sys.executable, "-c", orphan], check=True)
        time.sleep(1.2)
    assert others.percent > 50
