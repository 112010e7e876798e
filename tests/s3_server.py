"""A real S3 API server on 127.0.0.1 (moto's server mode) for the s3:// paths, with a bucket ready."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator

import boto3
import pytest
from moto.server import ThreadedMotoServer

CREDENTIALS = {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_DEFAULT_REGION": "us-east-1",
}


@dataclasses.dataclass(frozen=True)
class S3Server:
    endpoint_url: str
    bucket: str

    @property
    def env(self) -> dict[str, str]:
        """What a hubserve server process needs to use this S3 (pass as start_server's extra_env)."""
        return {**CREDENTIALS, "HUBSERVE_S3_ENDPOINT_URL": self.endpoint_url}

    def client(self):  # boto3's client type is generated at runtime: left unannotated
        return boto3.client("s3", endpoint_url=self.endpoint_url, **_boto_credentials())


def _boto_credentials() -> dict[str, str]:
    return {
        "aws_access_key_id": CREDENTIALS["AWS_ACCESS_KEY_ID"],
        "aws_secret_access_key": CREDENTIALS["AWS_SECRET_ACCESS_KEY"],
        "region_name": CREDENTIALS["AWS_DEFAULT_REGION"],
    }


@pytest.fixture(scope="session")
def s3_server() -> Iterator[S3Server]:
    """moto's S3 in a thread of the test process; the test process's own env gets the credentials too."""
    monkey = pytest.MonkeyPatch()
    for key, value in CREDENTIALS.items():
        monkey.setenv(key, value)
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    s3 = S3Server(endpoint_url=f"http://{host}:{port}", bucket="hubserve-test")
    s3.client().create_bucket(Bucket=s3.bucket)
    try:
        yield s3
    finally:
        server.stop()
        monkey.undo()
