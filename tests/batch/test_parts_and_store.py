"""Part files cut back to their commit, assembly in order, and the job store's progress steps."""

from __future__ import annotations

import dataclasses
from pathlib import Path

from hubserve.batch import parts
from hubserve.storage import Storage
from hubserve.store.batch_jobs import BatchJobStore


def test_reopening_a_part_drops_the_uncommitted_tail(tmp_path: Path) -> None:
    part = parts.PartFiles(tmp_path, 0, 0, 0)
    committed = part.append(b"one\ntwo\n", b"")
    part.append(b"three (never committed)\n", b"err\n")
    part.close()
    reopened = parts.PartFiles(tmp_path, 0, *committed)
    reopened.append(b"three\n", b"")
    reopened.close()
    assert parts.out_path(tmp_path, 0).read_bytes() == b"one\ntwo\nthree\n"
    assert parts.err_path(tmp_path, 0).read_bytes() == b""


def test_assemble_writes_one_out_per_file_and_errors_in_file_order(tmp_path: Path) -> None:
    staging, output = tmp_path / "staging", tmp_path / "out"
    for idx, (out, err) in enumerate([(b"a1\na2\n", b'{"line": 2}\n'), (b"b1\n", b""), (b"c1\n", b'{"line": 1}\n')]):
        part = parts.PartFiles(staging, idx, 0, 0)
        part.append(out, err)
        part.close()
    location = Storage([tmp_path]).resolve(str(output))
    url = parts.assemble(staging, ["a.jsonl", "sub/b.csv", "c.txt"], location)
    assert (output / "a.jsonl.out").read_bytes() == b"a1\na2\n"
    assert (output / "sub" / "b.csv.out").read_bytes() == b"b1\n"
    assert url == f"{output}/errors.jsonl"
    assert (output / "errors.jsonl").read_bytes() == b'{"line": 2}\n{"line": 1}\n'
    failed_output = tmp_path / "failed"
    parts.assemble(staging, ["a.jsonl", "sub/b.csv", "c.txt"], Storage([tmp_path]).resolve(str(failed_output)), results=False)
    assert sorted(p.name for p in failed_output.iterdir()) == ["errors.jsonl"]


def test_store_commits_progress_per_chunk(tmp_path: Path) -> None:
    store = BatchJobStore(f"sqlite:///{tmp_path / 'state.db'}")
    store.insert("batch-1", {"input": "/d"}, {"name": "batch-1"}, [("/d/a.jsonl", "a.jsonl"), ("/d/b.jsonl", "b.jsonl")])
    store.set_counts("batch-1", {0: 10, 1: 5})
    store.begin_run("batch-1")
    first = store.files("batch-1")[0]
    assert not first.finished
    step = dataclasses.replace(first, done=4, failed=1, offset=40, line=4, out_bytes=100, err_bytes=20)
    store.commit_chunk("batch-1", step, records=4, failed=1)
    job = store.get("batch-1")
    assert job is not None
    assert (job.records_total, job.records_done, job.records_failed, job.runs, job.run_start_done) == (15, 4, 1, 1, 0)
    assert store.files("batch-1")[0] == step
    store.begin_run("batch-1")
    assert store.get("batch-1").run_start_done == 4  # type: ignore[union-attr]
    store.close()
