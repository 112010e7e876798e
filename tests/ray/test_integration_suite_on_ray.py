"""The integration suite's backend-blind surface passes on a real Ray cluster, as it does locally.

Issue 17: the gateway, control, autoscaler, metrics and everything above them must not know which
backend runs. The ordinary run already passes ``SUITE`` on the local backend; here the same tests
run in a subprocess with ``HUBSERVE_TEST_BACKEND=ray`` (tests/integration/conftest.py then starts
every server with ``--backend ray --ray-address``) against a two-node cluster of this module.

Left out: the hf_compat ``clients`` fixture (a dozen task endpoints at once: minutes of model loads
on two cores), the Hub-cache tests (the cluster's nodes get a private HOME), restarts of killed
servers (the local backend's orphans), the 200 MB payload (the server's RSS through /proc), and
``test_concurrent_requests_are_batched_and_answered_as_alone`` and test_logs.py's first two tests,
which read the replica's log the instant the last response returns (or compare two reads made
milliseconds apart): the Ray backend copies node logs into that file every half second (the logs
API gets them within it: test_cli_prints_and_follows here, tests/ray/test_ray_backend.py); and
``test_folder_of_jsonl_csv_and_text_in_order_with_join``, whose last check looks for the batch lines
of the job's replica log, where on Ray a job's chunks run on Ray Data (batch/ray_data.py) instead.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.ray.conftest import RayCluster, running_cluster

ROOT = Path(__file__).resolve().parents[2]
_I = "tests/integration/"
SUITE = [
    # lifecycle: deploy, describe, update, invoke (HF /endpoints), delete; model errors; a crashed replica
    _I + "test_lifecycle.py::test_full_lifecycle",
    _I + "test_lifecycle.py::test_invocation_errors",
    _I + "test_lifecycle.py::test_replica_crash_fails_only_that_request_and_recovers",
    # the SageMaker dialect through boto3's sagemaker and sagemaker-runtime clients
    _I + "test_sagemaker_boto3.py::test_control_plane_and_runtime_flow",
    # huggingface_hub's HfApi endpoint calls
    _I + "test_hf_compat.py::test_endpoint_lifecycle",
    # streaming: SSE parts, an error mid stream, a client that leaves cancels the replica's work
    _I + "test_streaming.py::test_parts_arrive_as_server_sent_events",
    _I + "test_streaming.py::test_an_error_mid_stream_is_the_last_event",
    _I + "test_streaming.py::test_a_client_that_leaves_cancels_the_stream_in_the_replica",
    # scaling: serverless to zero and back, max_concurrency 429s, dedicated autoscaling up and down
    _I + "test_scaling.py::test_scales_to_zero_when_idle_and_back",
    _I + "test_scaling.py::test_throttles_exactly_past_max_concurrency",
    _I + "test_scaling.py::test_dedicated_autoscaling_up_and_down",
    # batching in the replica, async inference, batch jobs
    _I + "test_batching_e2e.py::test_a_bad_request_in_a_batch_fails_alone",
    _I + "test_async_inference.py::test_inline_payload_moves_queued_running_succeeded",
    _I + "test_batch_jobs.py::test_csv_without_header_and_split_none",
    _I + "test_batch_jobs.py::test_errors_file_line_numbers_and_max_failures",
    # metrics and logs
    _I + "test_metrics.py::test_counts_are_exact_and_latencies_match_the_client",
    _I + "test_logs.py::test_cli_prints_and_follows",
]


@pytest.fixture(scope="module")
def roomy_cluster() -> Iterator[RayCluster]:
    """Two nodes of 8 logical CPUs and 32 GiB each: the suite holds more replicas at once than two cores' worth.

    Without worker prestart: Ray would start a worker process per logical CPU when the first server connects.
    """
    with running_cluster(num_cpus=8, memory=32 * 1024**3, prestart=False) as cluster:
        yield cluster


def run_suite(env: dict[str, str], basetemp: Path) -> tuple[subprocess.CompletedProcess[str], float]:
    """The suite in a subprocess; its servers' homes and logs stay under ``basetemp`` to read after a failure."""
    started = time.monotonic()
    done = subprocess.run(
        [sys.executable, "-m", "pytest", *SUITE, "-p", "no:cacheprovider", "-q", "-x", "--timeout=240", "--durations=8",
         f"--basetemp={basetemp}"],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=900, check=False,
    )  # fmt: skip
    return done, time.monotonic() - started


def test_the_integration_suite_passes_on_ray(roomy_cluster: RayCluster, tmp_path: Path) -> None:
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false", "RAY_USAGE_STATS_ENABLED": "0",
           "HUBSERVE_TEST_BACKEND": "ray", "HUBSERVE_TEST_RAY_ADDRESS": roomy_cluster.address}  # fmt: skip
    done, took = run_suite(env, tmp_path / "suite")
    summary = done.stdout.strip().splitlines()[-1] if done.stdout.strip() else ""
    print(f"integration subset on Ray: {summary} in {took:.0f} s\n{done.stdout[-2500:]}")
    assert done.returncode == 0, done.stdout[-6000:] + done.stderr[-3000:]
    assert " passed" in summary and "skipped" not in summary, summary
    started_on_nodes = list(roomy_cluster.temp_dir.glob("hubserve-node-*/logs/*/*/*.log"))
    assert len(started_on_nodes) >= 10, started_on_nodes  # the replicas really ran on the cluster's nodes
