"""The replica's command line: one ``--launch`` JSON of a ReplicaLaunch plus the backend's plumbing."""

from __future__ import annotations

from pathlib import Path

import pytest

from hubserve.worker.launch import ReplicaLaunch, encode_launch
from hubserve.worker.server import parse_args

LAUNCH = ReplicaLaunch(
    endpoint="reviews",
    source="org/model",
    revision="main",
    task=None,
    allowed_roots=["/models"],
    hub_cache="/cache/hub",
    custom_code=True,
    dtype="float32",
    threads=3,
    runtime="onnx-int8",
    runtime_cache="/cache/runtimes",
    max_batch_size=8,
    max_batch_tokens=2048,
    env={"MY_FLAG": "1", "QUOTED": 'a "b" c'},
    storage_options={"s3": {"endpoint_url": "http://127.0.0.1:9000"}},
)


def test_the_launch_round_trips_through_the_command_line() -> None:
    argv = ["--socket", "/tmp/r.sock", "--error-file", "/tmp/e.json", "--cpus", "0,2", "--launch", encode_launch(LAUNCH)]
    args = parse_args(argv)
    assert args.launch == LAUNCH
    assert (args.socket, args.error_file, args.info_file, args.cpus) == (Path("/tmp/r.sock"), Path("/tmp/e.json"), None, "0,2")


def test_a_launch_that_is_not_one_is_refused(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exited:
        parse_args(["--socket", "s", "--error-file", "e", "--launch", '{"endpoint": "x"}'])  # no source
    assert exited.value.code == 2
    assert "not a ReplicaLaunch" in capsys.readouterr().err
