"""LocalBackend with the zygote: replicas are forks that answer like fresh processes and share weights.

One backend (and so one zygote, whose imports take seconds) serves the whole module; its
coroutines run on one event loop kept for the module.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import time
from collections.abc import Coroutine, Iterator
from pathlib import Path
from typing import Any, TypeVar

import pytest
import torch

from hubserve.backends import LocalBackend, Replica, ReplicaHealth, ReplicaLaunch, ReplicaStartFailed
from hubserve.types import Invocation
from hubserve.worker.handling import handle
from hubserve.worker.protocol import (
    Exited,
    FrameBuffer,
    Kill,
    Request,
    Spawn,
    Spawned,
    decode_zygote_command,
    decode_zygote_event,
    encode_control_frame,
)

T = TypeVar("T")
READY_TIMEOUT_S = 120.0

# (tiny model folder, task, body): one replica each, all running at once.
CASES = [
    ("text-classification", "text-classification", {"inputs": "I love this movie"}),
    ("token-classification", "token-classification", {"inputs": "My name is Sarah and I live in London"}),
    ("question-answering", "question-answering", {"inputs": {"question": "Where?", "context": "I live in Paris."}}),
    ("fill-mask", "fill-mask", {"inputs": "Paris is the [MASK] of France."}),
    ("sentence-transformers", "sentence-similarity", {"inputs": {"source_sentence": "a", "sentences": ["b", "c"]}}),
    ("text2text-generation", "summarization", {"inputs": "A long article.", "parameters": {"do_sample": False}}),
    # num_return_sequences: the replica runs it on the transformers pipeline, as in-process (not its generation engine)
    ("text-generation", "text-generation", {"inputs": "Once upon a time", "parameters": {"do_sample": False, "num_return_sequences": 1}}),
]


class Harness:
    """The module's event loop and backend, and what the tests started (stopped at the end)."""

    def __init__(self, logs: Path) -> None:
        self.loop = asyncio.new_event_loop()
        self.backend: LocalBackend = self.run(_make_backend(logs))
        self.handles: list[Replica] = []
        self._ids = iter(range(1, 1000))

    def run(self, coroutine: Coroutine[Any, Any, T]) -> T:
        return self.loop.run_until_complete(coroutine)

    def start(self, source: Path | str, task: str | None, **launch: Any) -> Replica:
        replica_id = f"t{next(self._ids)}"
        replica = self.run(self.backend.start(replica_id, ReplicaLaunch(endpoint="tests", source=str(source), task=task, **launch)))
        self.handles.append(replica)
        return replica

    def ready(self, replica: Replica) -> None:
        self.run(self.backend.wait_ready(replica, READY_TIMEOUT_S))

    def call(self, replica: Replica, body: dict[str, Any]) -> Any:
        assert replica.channel is not None
        reply = self.run(replica.channel.call(Invocation(endpoint="tests", body=json.dumps(body).encode())))
        return json.loads(reply.body)

    def close(self) -> None:
        async def stop_all() -> None:
            await asyncio.gather(*(self.backend.stop(h, grace_s=2.0) for h in self.handles), return_exceptions=True)
            await self.backend.close()

        self.run(stop_all())
        self.loop.close()


async def _make_backend(logs: Path) -> LocalBackend:
    return LocalBackend(logs)


@pytest.fixture(scope="module")
def harness(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Harness]:
    running = Harness(tmp_path_factory.mktemp("zygote-logs"))
    yield running
    running.close()


def pid_of(replica: Replica) -> int:
    """The local backend's placement is "pid <n>"; tests look at the process itself."""
    kind, pid = replica.placement.split()
    assert kind == "pid"
    return int(pid)


def _parent_of(pid: int) -> int:
    with open(f"/proc/{pid}/stat") as stat:
        return int(stat.read().rsplit(")", 1)[1].split()[1])


def _threads_of(pid: int) -> int:
    with open(f"/proc/{pid}/status") as status:
        return int(next(line for line in status if line.startswith("Threads:")).split()[1])


def _in_process(model_dir: Path, task: str, body: dict[str, Any]) -> Any:
    """The same request answered in this process, one torch thread like the replica."""
    from hubserve.models.loading import load_model

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        response = handle(load_model(model_dir, task), Request(1, json.dumps(body).encode()))
    finally:
        torch.set_num_threads(threads)
    assert response.ok, response.error_message
    return json.loads(response.body)


def test_control_frames_survive_any_split() -> None:
    launch = '{"endpoint": "e", "source": "/models/m", "task": "fill-mask"}'
    commands = [Spawn("a-1", ["--launch", launch], {"X": "1"}, "/tmp/a.log", [0]), Kill("a-1", signal.SIGTERM)]
    stream = b"".join(encode_control_frame(command) for command in commands)
    for cut in range(len(stream) + 1):
        frames = FrameBuffer()
        payloads = frames.feed(stream[:cut]) + frames.feed(stream[cut:])
        assert [decode_zygote_command(payload) for payload in payloads] == commands
    events = [Spawned("a-1", 42), Exited("a-1", 42, -signal.SIGKILL)]
    assert [decode_zygote_event(encode_control_frame(event)[4:]) for event in events] == events


def test_forked_replicas_answer_like_the_model_in_process(harness: Harness, tiny_models: dict[str, Path]) -> None:
    assert harness.run(harness.backend.wait_zygote())
    handles = [harness.start(tiny_models[folder], task) for folder, task, _ in CASES]  # all loading at once
    for replica in handles:
        harness.ready(replica)
    zygote = harness.backend.zygote_pid
    assert zygote is not None
    for replica, (folder, task, body) in zip(handles, CASES, strict=True):
        assert _parent_of(pid_of(replica)) == zygote, "replicas are forks of the zygote"
        assert harness.call(replica, body) == _in_process(tiny_models[folder], task, body), task
    assert "hubserve-replica-timing" in Path(handles[0].log_location).read_text()
    # Forking left the zygote as it must stay: one thread, nothing started that a fork would lose.
    assert _threads_of(zygote) == 1


def test_replicas_are_pinned_round_robin(harness: Harness, tiny_models: dict[str, Path]) -> None:
    cores = len(os.sched_getaffinity(0))
    if cores < 2:
        pytest.skip("needs two CPUs")
    first = harness.start(tiny_models["text-classification"], "text-classification", threads=1)
    second = harness.start(tiny_models["text-classification"], "text-classification", threads=1)
    harness.ready(first)
    harness.ready(second)
    one, two = os.sched_getaffinity(pid_of(first)), os.sched_getaffinity(pid_of(second))
    assert len(one) == len(two) == 1 and one != two
    harness.run(harness.backend.stop(first))
    harness.run(harness.backend.stop(second))


def test_exit_of_a_killed_replica_is_reported(harness: Harness, tiny_models: dict[str, Path]) -> None:
    handle = harness.start(tiny_models["text-classification"], "text-classification")
    harness.ready(handle)
    os.kill(pid_of(handle), signal.SIGKILL)
    assert harness.run(asyncio.wait_for(harness.backend.wait_exit(handle), 10)) == -signal.SIGKILL
    assert harness.backend.health(handle) is ReplicaHealth.EXITED and harness.backend.resources(handle) is None
    harness.run(harness.backend.stop(handle))  # stopping an exited replica only cleans up


def test_stop_terminates_and_reports_the_signal(harness: Harness, tiny_models: dict[str, Path]) -> None:
    handle = harness.start(tiny_models["feature-extraction"], "feature-extraction")
    harness.ready(handle)
    pid = pid_of(handle)
    exit_code = harness.loop.create_task(harness.backend.wait_exit(handle))  # as the controller's supervisor waits
    harness.run(harness.backend.stop(handle, grace_s=5.0))
    assert harness.run(asyncio.wait_for(exit_code, 1)) == -signal.SIGTERM
    assert not os.path.exists(f"/proc/{pid}") or _parent_of(pid) != harness.backend.zygote_pid
    assert harness.backend.health(handle) is ReplicaHealth.EXITED


def test_start_failure_reason(harness: Harness, tmp_path: Path) -> None:
    broken = tmp_path / "broken"
    broken.mkdir()
    (broken / "config.json").write_text('{"model_type": "bert", "hidden_size": ')  # cut off mid-file
    (broken / "model.safetensors").write_bytes(b"not a safetensors file")
    handle = harness.start(broken, "text-classification")
    with pytest.raises(ReplicaStartFailed) as failed:
        harness.ready(handle)
    assert failed.value.reason.startswith("loading the model failed: ")
    assert harness.run(harness.backend.wait_exit(handle)) == 3


def test_source_and_task_failures_are_the_reason(harness: Harness, tmp_path: Path) -> None:
    """The replica resolves its source and infers its task; what goes wrong there is what the user reads."""
    unknown = tmp_path / "unknown-head"
    unknown.mkdir()
    (unknown / "config.json").write_text('{"model_type": "bert", "architectures": ["BertForSomethingNew"]}')
    cases = [
        (tmp_path / "nowhere", "text-classification", ["does not exist"]),
        ("org/not-in-cache", "text-classification", ["could not fetch 'org/not-in-cache'", "offline"]),
        (unknown, None, ["could not infer the task", "Set model.task"]),
    ]
    for source, task, expected in cases:
        replica = harness.start(source, task)
        with pytest.raises(ReplicaStartFailed) as failed:
            harness.ready(replica)
        assert all(text in failed.value.reason for text in expected), failed.value.reason
        assert not failed.value.reason.startswith("loading the model failed")
        assert harness.run(harness.backend.wait_exit(replica)) == 3


def test_the_task_is_inferred_and_health_and_resources_are_reported(harness: Harness, tiny_models: dict[str, Path]) -> None:
    replica = harness.start(tiny_models["text-classification"], None)
    assert harness.backend.health(replica) is ReplicaHealth.STARTING
    harness.ready(replica)
    assert replica.info["task"] == "text-classification"
    assert harness.call(replica, {"inputs": "fine"})[0]["label"] in ("NEGATIVE", "POSITIVE")
    assert harness.backend.health(replica) is ReplicaHealth.READY
    used = harness.backend.resources(replica)
    assert used is not None and used.memory_mb > 10 and used.cpu_seconds > 0
    harness.run(harness.backend.stop(replica))
    assert harness.backend.health(replica) is ReplicaHealth.EXITED and harness.backend.resources(replica) is None


def test_a_launch_longer_than_the_command_line_room_reaches_the_replica_whole(harness: Harness, tiny_models: dict[str, Path]) -> None:
    """ps shows a forked replica's command line cut to ARGV_ROOM; the argv it parses is the whole launch."""
    from hubserve.worker.zygote import ARGV_ROOM

    padding = "x" * (ARGV_ROOM + 1000)
    replica = harness.start(tiny_models["text-classification"], "text-classification", env={"HUBSERVE_TEST_PAD": padding})
    harness.ready(replica)
    assert _parent_of(pid_of(replica)) == harness.backend.zygote_pid
    assert harness.call(replica, {"inputs": "fine"})[0]["label"] in ("NEGATIVE", "POSITIVE")
    with open(f"/proc/{pid_of(replica)}/cmdline", "rb") as cmdline:
        shown = cmdline.read()
    assert b"hubserve.worker" in shown and b"--launch" in shown and len(shown) < ARGV_ROOM + 200
    harness.run(harness.backend.stop(replica))


def test_import_time_env_starts_a_fresh_process(harness: Harness, tiny_models: dict[str, Path]) -> None:
    body = {"inputs": "I love this movie"}
    handle = harness.start(
        tiny_models["text-classification"], "text-classification", env={"TRANSFORMERS_VERBOSITY": "error"}
    )
    harness.ready(handle)
    assert _parent_of(pid_of(handle)) == os.getpid()  # not a fork of the zygote
    assert harness.call(handle, body) == _in_process(tiny_models["text-classification"], "text-classification", body)
    exit_code = harness.loop.create_task(harness.backend.wait_exit(handle))
    harness.run(harness.backend.stop(handle))
    assert harness.run(exit_code) == -signal.SIGTERM


def test_subprocess_mode(tiny_models: dict[str, Path], tmp_path: Path) -> None:
    async def scenario() -> tuple[Any, int | None]:
        backend = LocalBackend(tmp_path / "logs", zygote=False)
        assert backend.zygote_pid is None and not await backend.wait_zygote()
        launch = ReplicaLaunch(endpoint="tests", source=str(tiny_models["fill-mask"]), task="fill-mask")
        handle = await backend.start("fresh", launch)
        channel = await backend.wait_ready(handle, READY_TIMEOUT_S)
        body = b'{"inputs": "Paris is the [MASK] of France."}'
        response = await channel.call(Invocation(endpoint="tests", body=body, accept="*/*"))
        parent = _parent_of(pid_of(handle))
        await backend.stop(handle)
        await backend.close()
        return json.loads(response.body), parent

    answer, parent = asyncio.run(scenario())
    assert parent == os.getpid()
    assert answer == _in_process(tiny_models["fill-mask"], "fill-mask", {"inputs": "Paris is the [MASK] of France."})


# -- weights shared between replicas --------------------------------------------------------------


def _build_medium_model(dst: Path) -> int:
    """A BERT classifier with ~70 MB of float32 weights, most in its layers; returns the file's size."""
    from tiny_models import PAD_ID, VOCAB_SIZE, tokenizer
    from transformers import BertConfig, BertForSequenceClassification

    torch.manual_seed(11)
    config = BertConfig(
        vocab_size=VOCAB_SIZE, hidden_size=256, num_hidden_layers=8, num_attention_heads=4,
        intermediate_size=2048, max_position_embeddings=512, pad_token_id=PAD_ID, num_labels=2,
    )  # fmt: skip
    BertForSequenceClassification(config).save_pretrained(str(dst))
    tokenizer().save_pretrained(str(dst))
    return (dst / "model.safetensors").stat().st_size


def _pss_kb(pid: int) -> int:
    with open(f"/proc/{pid}/smaps_rollup") as rollup:
        return int(next(line for line in rollup if line.startswith("Pss:")).split()[1])


def _weights_mapping_kb(pid: int) -> dict[str, int]:
    """Rss, Pss and Anonymous (copied-on-write) kB of the process's mapping of a .safetensors file."""
    totals = {"Rss": 0, "Pss": 0, "Anonymous": 0}
    inside = False
    with open(f"/proc/{pid}/smaps") as smaps:
        for line in smaps:
            head = line.split()
            if head and "-" in head[0] and not head[0].endswith(":"):
                inside = line.rstrip().endswith(".safetensors")
            elif inside and head and head[0].rstrip(":") in totals:
                totals[head[0].rstrip(":")] += int(head[1])
    return totals


def test_replicas_of_one_model_share_its_weight_pages(harness: Harness, tmp_path: Path) -> None:
    """The second replica of a model adds its own working memory but not the weights again.

    Memory is counted as the sum of PSS over the zygote and the replicas: shared pages are
    split between the processes that map them, so the sum is what the machine really spends.
    """
    model_dir = tmp_path / "medium"
    _build_medium_model(model_dir)
    body = {"inputs": "the quiet movie was a careful study " * 12, "parameters": {"truncation": True}}
    zygote = harness.backend.zygote_pid
    assert zygote is not None

    def settle(handle: Replica) -> Any:
        answers = [harness.call(handle, body) for _ in range(3)]  # the allocator's working set settles
        time.sleep(0.3)
        return answers[-1]

    empty = _pss_kb(zygote)
    first = harness.start(model_dir, "text-classification")
    harness.ready(first)
    expected = settle(first)
    with_one = _pss_kb(zygote) + _pss_kb(pid_of(first))
    weights_touched = _weights_mapping_kb(pid_of(first))["Rss"]

    second = harness.start(model_dir, "text-classification")
    harness.ready(second)
    assert settle(second) == expected
    with_two = _pss_kb(zygote) + _pss_kb(pid_of(first)) + _pss_kb(pid_of(second))

    mapping = _weights_mapping_kb(pid_of(second))
    assert weights_touched > 20 * 1024 and mapping["Rss"] > 20 * 1024, "the parameters are views of the mapped file"
    assert mapping["Anonymous"] == 0, "no weight page was copied"
    assert mapping["Pss"] <= mapping["Rss"] * 0.6, f"the weight pages are shared with the first replica: {mapping}"
    first_added, second_added = with_one - empty, with_two - with_one
    assert second_added < first_added - weights_touched * 0.5, (
        f"the first replica added {first_added} kB ({weights_touched} kB of it weights), the second {second_added} kB"
    )
    for replica in (first, second):
        harness.run(harness.backend.stop(replica))


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().rsplit(")", 1)[1].split()[0] not in ("Z", "X")
    except OSError:
        return False


def test_zygote_restarts_after_it_dies(harness: Harness, tiny_models: dict[str, Path]) -> None:
    """Replicas of a dead zygote keep serving (they watch the server), are stopped directly and reported
    when they exit; the next start gets a new zygote."""
    handle = harness.start(tiny_models["text-classification"], "text-classification")
    harness.ready(handle)
    old = harness.backend.zygote_pid
    assert old is not None
    os.kill(old, signal.SIGKILL)
    time.sleep(1.5)  # three of the replica's watch intervals
    assert harness.call(handle, {"inputs": "still here"})[0]["label"] in ("NEGATIVE", "POSITIVE")
    orphan = pid_of(handle)
    harness.run(harness.backend.stop(handle))  # the zygote cannot pass the signal on: the backend sends it itself
    assert not _alive(orphan)

    again = harness.start(tiny_models["text-classification"], "text-classification")
    harness.ready(again)
    new = harness.backend.zygote_pid
    assert new is not None and new != old and _parent_of(pid_of(again)) == new
    assert harness.call(again, {"inputs": "fine"})[0]["label"] in ("NEGATIVE", "POSITIVE")


def test_a_zygote_that_dies_importing_means_fresh_processes(tiny_models: dict[str, Path], tmp_path: Path) -> None:
    async def scenario() -> tuple[int | None, Any, bool]:
        backend = LocalBackend(tmp_path / "logs")
        assert backend._zygote is not None
        os.kill(backend._zygote.pid, signal.SIGKILL)  # as if an import had crashed it
        launch = ReplicaLaunch(endpoint="tests", source=str(tiny_models["text-classification"]), task="text-classification")
        handle = await backend.start("fallback", launch)
        channel = await backend.wait_ready(handle, READY_TIMEOUT_S)
        response = await channel.call(Invocation(endpoint="tests", body=b'{"inputs": "fine"}'))
        parent = _parent_of(pid_of(handle))
        await backend.stop(handle)
        forkable = backend._forkable(handle.launch)
        await backend.close()
        return parent, json.loads(response.body), forkable

    parent, answer, forkable = asyncio.run(scenario())
    assert parent == os.getpid()  # a fresh process, started by this one
    assert answer[0]["label"] in ("NEGATIVE", "POSITIVE")
    assert not forkable  # and fresh processes from now on, without trying the zygote again
