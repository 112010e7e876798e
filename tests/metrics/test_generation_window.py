"""Generation figures in the rolling window and the registry: TTFT and inter-token percentiles from
synthetic streams, tokens per second, engine levels, the section only where it applies, Prometheus."""

from __future__ import annotations

from hubserve.metrics import EndpointGauges, EngineLevels, Metrics, RollingWindow


class Clock:
    def __init__(self, now: float = 6000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def gauges(name: str, *, generative: bool = True, engine: EngineLevels | None = None) -> EndpointGauges:
    return EndpointGauges(
        endpoint=name, concurrent=0, held=0, replicas_ready=1, replicas_starting=0, max_concurrency=10,
        memory_limit_mb=1024, replica_memory_mb={}, replica_cpu_percent={}, generative=generative, engine=engine,
    )  # fmt: skip


def test_ttft_and_inter_token_percentiles_come_from_the_streams() -> None:
    clock = Clock()
    window = RollingWindow(clock)
    for i in range(100):  # TTFT 1..100 ms, each stream with gaps of 10 ms and one slow gap of 200 ms
        window.record_stream(float(i + 1), [10.0] * 98 + [200.0], tokens=100)
    clock.now += 30
    generation = window.summary(60)["generation"]
    assert generation["streams"] == 100
    ttft = generation["time_to_first_token_ms"]
    assert ttft["count"] == 100 and ttft["p50"] == 50.0 and ttft["p99"] == 99.0 and ttft["max"] == 100.0
    itl = generation["inter_token_latency_ms"]
    assert itl["count"] == 9900 and itl["p50"] == 10.0 and itl["max"] == 200.0
    assert generation["generated_tokens"] == 10_000
    # 30 s into the minute the window began in: 10,000 tokens over 30 s
    assert generation["tokens_per_second"]["avg"] == round(10_000 / 30, 3)
    row = window.summary(60)["series"][-1]
    assert (
        row["ttft_ms_p50"] == 50.0 and row["itl_ms_p50"] == 10.0 and row["tokens_per_second"] == round(10_000 / 30, 3)
    )


def test_inter_token_p99_sees_the_slow_tail() -> None:
    window = RollingWindow(Clock())
    window.record_stream(5.0, [1.0] * 95 + [50.0] * 5, tokens=101)
    itl = window.summary(60)["generation"]["inter_token_latency_ms"]
    assert itl["p50"] == 1.0 and itl["p99"] == 50.0


def test_no_generation_section_for_an_endpoint_that_never_streamed() -> None:
    window = RollingWindow(Clock())
    window.record_invocation(200, 5.0, 0.1, cold_start=False, bytes_in=10, bytes_out=10)
    window.record_gauges(concurrent=1, held=0, replicas=1, memory_mb=100.0, cpu_percent=5.0)
    assert window.summary(60)["generation"] is None
    # ...but a generative endpoint shows an empty one before its first request
    empty = window.summary(60, generative=True)["generation"]
    assert empty["streams"] == 0 and empty["time_to_first_token_ms"]["p50"] is None
    assert empty["sequences_running"] == {"avg": None, "max": 0.0}


def test_engine_levels_are_averaged_and_their_maxima_kept() -> None:
    window = RollingWindow(Clock())
    for running, waiting in ((2, 0), (4, 3), (6, 1)):
        window.record_engine(running=running, waiting=waiting, batch_size=running)
    generation = window.summary(60)["generation"]
    assert generation["sequences_running"] == {"avg": 4.0, "max": 6}
    assert generation["sequences_waiting"] == {"avg": round(4 / 3, 3), "max": 3}
    assert generation["batch_size"]["max"] == 6
    assert window.summary(60)["series"][-1]["sequences_running_avg"] == 4.0


def test_metrics_count_the_engines_tokens_not_the_streams_once_an_engine_reports() -> None:
    metrics = Metrics()
    metrics.stream("custom", 12.0, [3.0, 4.0], tokens=3)  # custom code: no engine, parts are the tokens
    assert metrics.summary("custom", 60)["generation"]["generated_tokens"] == 3

    engine = EngineLevels(running=3, waiting=2, batch_size=3, generated_tokens=40, tokens_per_second=40.0)
    metrics.sample(gauges("gpt", engine=engine))
    metrics.stream("gpt", 20.0, [5.0] * 9, tokens=10)  # already in the engine's count
    summary = metrics.summary("gpt", 60)["generation"]
    assert summary["generated_tokens"] == 40
    assert summary["streams"] == 1 and summary["time_to_first_token_ms"]["p50"] == 20.0
    assert summary["sequences_running"]["current"] == 3 and summary["sequences_waiting"]["current"] == 2
    assert summary["batch_size"]["current"] == 3 and summary["tokens_per_second"]["current"] == 40.0


def test_a_generative_endpoint_without_an_engine_reading_yet_still_has_the_section() -> None:
    metrics = Metrics()
    metrics.sample(gauges("gpt", generative=True))
    assert metrics.summary("gpt", 60)["generation"] is not None
    metrics.sample(gauges("bert", generative=False))
    assert metrics.summary("bert", 60)["generation"] is None


def test_prometheus_shows_the_generation_series_and_forgets_them() -> None:
    metrics = Metrics()
    metrics.sample(gauges("gpt", engine=EngineLevels(2, 1, 2, 7, 7.0)))
    metrics.stream("gpt", 15.0, [2.0, 3.0], tokens=3)
    text = metrics.prometheus_text().decode()
    assert 'hubserve_time_to_first_token_seconds_count{endpoint="gpt"} 1.0' in text
    assert 'hubserve_inter_token_latency_seconds_count{endpoint="gpt"} 2.0' in text
    assert 'hubserve_generated_tokens_total{endpoint="gpt"} 7.0' in text
    assert 'hubserve_sequences_running{endpoint="gpt"} 2.0' in text
    assert 'hubserve_sequences_waiting{endpoint="gpt"} 1.0' in text
    assert 'hubserve_batch_size{endpoint="gpt"} 2.0' in text
    metrics.forget("gpt")
    assert 'endpoint="gpt"' not in metrics.prometheus_text().decode()


def test_inter_token_buckets_count_a_gap_at_a_bound_in_that_bucket() -> None:
    metrics = Metrics()
    metrics.stream("gpt", 1.0, [10.0, 10.0001, 3000.0], tokens=4)
    text = metrics.prometheus_text().decode()
    assert 'hubserve_inter_token_latency_seconds_bucket{endpoint="gpt",le="0.01"} 1.0' in text
    assert 'hubserve_inter_token_latency_seconds_bucket{endpoint="gpt",le="0.02"} 2.0' in text
    assert 'hubserve_inter_token_latency_seconds_bucket{endpoint="gpt",le="2.5"} 2.0' in text
    assert 'hubserve_inter_token_latency_seconds_bucket{endpoint="gpt",le="+Inf"} 3.0' in text
    assert 'hubserve_inter_token_latency_seconds_count{endpoint="gpt"} 3.0' in text


def test_many_gaps_keep_exact_counts_and_a_bounded_sample() -> None:
    window = RollingWindow(Clock())
    window.record_stream(1.0, [1.0] * 3000 + [9.0], tokens=3002)
    itl = window.minutes(60)[-1].itl_ms
    assert itl.count == 3001 and itl.maximum == 9.0 and len(itl.samples) == 2048
    assert itl.total == 3009.0
