"""A full disk under an async result and a batch output, on a real server: the OS's own ENOSPC.

The output folder is a 1 MB tmpfs (mounted here; as root) filled to within 64 KB, and the result
or output is larger than that, so the write fails halfway, as on a real full disk. Without the
right to mount, a read-only folder stands in (EACCES; root would write through it, so root
without mount skips). What this proves:

- the async inference fails, with a reason that names the write error; no result file, partial
  or whole, is left where a client reads results (writes go to a temporary name, then a rename);
- the batch job fails with a reason that names the write error and leaves no ``.out`` behind;
  once there is room again, starting it again writes every record exactly once;
- the server goes on serving: a sync invocation and an async one succeed right after.
"""

from __future__ import annotations

import json
import os
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.integration.conftest import RunningServer, start_server, stop_server, wait_for_state
from tests.integration.test_async_inference import DONE
from tests.integration.test_batch_jobs import echo_model, echo_spec, lines, wait_job, write_jsonl

FREE_BYTES = 64 * 1024


class FullFolder:
    """A folder whose writes fail: a nearly full tmpfs ("tmpfs") or a read-only folder ("read-only")."""

    def __init__(self, path: Path) -> None:
        self.path = path
        path.mkdir(parents=True)
        mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", str(path)],
                                 capture_output=True, check=False)  # fmt: skip
        if mounted.returncode == 0:
            self.kind = "tmpfs"
            self.errno_words = "No space left on device"
            self._fill()
        elif os.geteuid() != 0:
            self.kind = "read-only"
            self.errno_words = "Permission denied"
            path.chmod(0o555)
        else:
            pytest.skip("root without the right to mount a tmpfs: no folder can refuse root's writes")

    def _fill(self) -> None:
        """Fill the tmpfs, then give back all but FREE_BYTES of room."""
        filler = self.path / "filler"
        with open(filler, "wb") as file:
            try:
                while True:
                    file.write(b"\0" * 65536)
                    file.flush()
            except OSError:
                pass
        size = filler.stat().st_size
        os.truncate(filler, size - FREE_BYTES)

    def make_room(self) -> None:
        if self.kind == "tmpfs":
            (self.path / "filler").unlink()
        else:
            self.path.chmod(0o755)

    def files(self, under: str) -> list[Path]:
        """Every file below ``under`` in the folder (results, partial files, temporary names)."""
        return sorted(p for p in (self.path / under).rglob("*") if p.is_file())

    def close(self) -> None:
        if self.kind == "tmpfs":
            subprocess.run(["umount", "-l", str(self.path)], check=False)
        else:
            self.path.chmod(0o755)


@pytest.fixture(scope="module")
def data_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("disk-full")


@pytest.fixture(scope="module")
def full(data_root: Path) -> Iterator[FullFolder]:
    folder = FullFolder(data_root / "full")
    yield folder
    folder.close()


@pytest.fixture(scope="module")
def server(data_root: Path, full: FullFolder) -> Iterator[RunningServer]:
    running = start_server(data_root / "home", extra_env={"HUBSERVE_STORAGE_ROOTS": json.dumps([str(data_root)])})
    yield running
    stop_server(running)


@pytest.fixture(scope="module")
def api(server: RunningServer, data_root: Path) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=server.url, headers=server.headers(), timeout=60) as client:
        client.post("/v1/endpoints", json=echo_spec(echo_model(data_root))).raise_for_status()
        wait_for_state(client, "echo", {"running"})
        yield client


def wait_done(api: httpx.Client, inference_id: str, timeout: float = 60) -> dict:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        status = api.get(f"/endpoints/echo/async-invocations/{inference_id}").json()
        if status["status"] in DONE:
            return status
        time.sleep(0.1)
    raise AssertionError(f"{inference_id} not done after {timeout}s: {status}")


def still_serving(api: httpx.Client) -> None:
    sync = api.post("/endpoints/echo", json={"inputs": "after"})
    assert sync.status_code == 200 and sync.json() == {"echo": "after"}, sync.text
    accepted = api.post("/endpoints/echo/async-invocations", json={"inputs": "after, async"}).json()
    done = wait_done(api, accepted["inferenceId"])
    assert done["status"] == "succeeded", done
    assert json.loads(Path(done["outputLocation"]).read_text()) == {"echo": "after, async"}


def test_async_result_on_a_full_disk_fails_with_the_reason(api: httpx.Client, full: FullFolder) -> None:
    big = "x" * (4 * FREE_BYTES)  # the result cannot fit: the write fails halfway
    response = api.post("/endpoints/echo/async-invocations", json={"inputs": big},
                        headers={"X-Hubserve-Output-Location": str(full.path / "async")})  # fmt: skip
    assert response.status_code == 202, response.text
    started = time.monotonic()
    done = wait_done(api, response.json()["inferenceId"])
    print(f"async on a {full.kind} folder: {done['status']} after {time.monotonic() - started:.1f} s, "
          f"{done['attempts']} attempts: {done['error']}")  # fmt: skip
    assert done["status"] == "failed", done
    assert done["error"]["type"] == "OutputWriteError", done
    assert full.errno_words in done["error"]["message"] and done["outputLocation"] in done["error"]["message"], done
    output = Path(done["outputLocation"])
    assert not output.exists()
    leftovers = [p for p in full.files("async") if p != Path(done["failureLocation"])]
    assert leftovers == [], f"partial files left behind: {leftovers}"
    if full.kind == "tmpfs":  # the small failure document fits in what is left: it says why
        failure = json.loads(Path(done["failureLocation"]).read_text())
        assert failure["status"] == "failed" and full.errno_words in failure["error"]["message"]
    still_serving(api)


def test_batch_output_on_a_full_disk_fails_then_resumes(api: httpx.Client, data_root: Path, full: FullFolder) -> None:
    records = [{"inputs": f"{i:04d}" + "y" * 1000} for i in range(200)]  # about 200 KB of output
    source = write_jsonl(data_root / "batch-in" / "records.jsonl", records)
    out = full.path / "batch-out"
    job = api.post("/v1/batch-jobs", json={"endpoint": "echo", "input": str(source), "output": str(out),
                                           "batch_size": 20}).json()  # fmt: skip
    failed = wait_job(api, job["id"], {"completed", "failed"})
    print(f"batch on a {full.kind} folder: {failed['status']}: {failed['reason']}")
    assert failed["status"] == "failed", failed
    assert "could not be written" in failed["reason"] and full.errno_words in failed["reason"], failed
    assert full.files("batch-out") == [], f"a failed job left files: {full.files('batch-out')}"
    still_serving(api)

    full.make_room()
    api.post(f"/v1/batch-jobs/{job['id']}/start").raise_for_status()
    done = wait_job(api, job["id"], {"completed", "failed"})
    assert done["status"] == "completed", done
    assert done["records"] == {"total": 200, "done": 200, "succeeded": 200, "failed": 0, "remaining": 0}
    assert lines(out / "records.jsonl.out") == [{"echo": r["inputs"]} for r in records]
    assert [p.name for p in full.files("batch-out")] == ["records.jsonl.out"]
