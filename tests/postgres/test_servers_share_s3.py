"""Two servers behind one name, as behind a load balancer: one PostgreSQL store and one S3 API server
(moto's, on 127.0.0.1). Async inferences sent with boto3 to the server that does not run the endpoint
are forwarded to the one that does; that server is killed (kill -9) mid-queue; the survivor takes the
endpoint over and every accepted inference ends exactly once, one result object each in S3."""

from __future__ import annotations

import json
import os
import secrets
import shutil
import signal
import time
from pathlib import Path
from typing import Any

import httpx
from s3_server import S3Server

from tests.integration.conftest import RunningServer, stop_server, wait_for_state
from tests.integration.test_async_inference import SLEEPY_HANDLER, wait_done
from tests.postgres.test_forwarding import runtime
from tests.postgres.test_servers_on_postgres import running_owners, serve_on

INFERENCES = 10


def test_async_work_sent_anywhere_completes_once_in_s3_when_its_server_dies(
    pg_url: str, s3_server: S3Server, tmp_path: Path, tiny_models: dict[str, Path]
) -> None:
    s3 = s3_server.client()
    prefix = f"shared-{secrets.token_hex(4)}"
    model = tmp_path / "sleepy"
    shutil.copytree(tiny_models["text-classification"], model)
    (model / "handler.py").write_text(SLEEPY_HANDLER)
    spec: dict[str, Any] = {
        "name": "s3-queue", "model": {"source": str(model)}, "custom_code": True,
        "compute": {"type": "dedicated", "min_replicas": 1, "max_replicas": 1},
        "async_inference": {"output_location": f"s3://{s3_server.bucket}/{prefix}/out",
                            "max_concurrent_invocations_per_replica": 2},
    }  # fmt: skip
    holder = serve_on(tmp_path / "home-a", pg_url, **s3_server.env)
    other: RunningServer | None = None
    finals: dict[str, dict[str, Any]] = {}
    try:
        other = serve_on(tmp_path / "home-b", pg_url, **s3_server.env)
        with httpx.Client(base_url=holder.url, headers=holder.headers(), timeout=60) as api:
            assert api.post("/v1/endpoints", json=spec).status_code == 201
            wait_for_state(api, "s3-queue", {"running"})
        client = runtime(other)  # boto3, SigV4, to the server that does not run the endpoint
        accepted = []
        for index in range(INFERENCES):
            key = f"{prefix}/in/{index}.json"
            s3.put_object(Bucket=s3_server.bucket, Key=key, Body=json.dumps({"inputs": index, "sleep": 1.5}).encode())
            queued = client.invoke_endpoint_async(
                EndpointName="s3-queue", InputLocation=f"s3://{s3_server.bucket}/{key}", ContentType="application/json"
            )
            assert queued["ResponseMetadata"]["HTTPStatusCode"] == 202
            accepted.append(queued["InferenceId"])
        deadline = time.monotonic() + 30
        while not running_owners(pg_url) and time.monotonic() < deadline:
            time.sleep(0.1)
        assert running_owners(pg_url), "the holder never started the queue"
        os.kill(holder.process.pid, signal.SIGKILL)  # mid-queue, holding running work
        holder.process.wait()
        with httpx.Client(base_url=other.url, headers=other.headers(), timeout=60) as api:
            finals = {name: wait_done(api, "s3-queue", name, timeout=240) for name in accepted}
    finally:
        if holder.process.poll() is None:
            holder.process.kill()
            holder.process.wait()
        if other is not None:
            stop_server(other)
    failed = {name: final.get("error") for name, final in finals.items() if final["status"] != "succeeded"}
    assert failed == {}, (failed, other.log()[-4000:] if other is not None else "")
    listed = s3.list_objects_v2(Bucket=s3_server.bucket, Prefix=f"{prefix}/out/").get("Contents", [])
    assert sorted(item["Key"] for item in listed) == sorted(f"{prefix}/out/{name}.out" for name in accepted)
    for index, name in enumerate(accepted):
        body = s3.get_object(Bucket=s3_server.bucket, Key=f"{prefix}/out/{name}.out")["Body"].read()
        assert json.loads(body) == {"echo": index, "slept": 1.5}
    assert any(final["attempts"] > 1 for final in finals.values()), "work running on the killed server was not retried"
