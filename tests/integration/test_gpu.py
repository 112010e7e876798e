"""GPU instance sizes serve on CUDA in half precision; skipped cleanly on machines without a GPU."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import httpx
import pytest

from tests.integration.conftest import wait_for_state

if shutil.which("nvidia-smi") is None:
    pytest.skip("needs an NVIDIA GPU", allow_module_level=True)

pytestmark = pytest.mark.gpu


def gpu_pids() -> set[int]:
    listing = subprocess.run(
        ["nvidia-smi", "--query-compute-apps=pid", "--format=csv,noheader"], capture_output=True, text=True, check=True
    ).stdout
    return {int(line) for line in listing.split() if line.strip().isdigit()}


@pytest.mark.parametrize("dtype", ["float16", "bfloat16"])
def test_gpu_endpoint_runs_on_cuda(api: httpx.Client, tiny_models: dict[str, Path], dtype: str) -> None:
    name = f"gpu-{dtype}"
    source = str(tiny_models["text-classification"])
    spec = {"name": name, "model": {"source": source, "task": "text-classification", "dtype": dtype},
            "compute": {"type": "dedicated", "instance": "gpu-small"}}  # fmt: skip
    assert api.post("/v1/endpoints", json=spec).status_code == 201
    assert wait_for_state(api, name, {"running", "failed"})["state"] == "running"
    response = api.post(f"/endpoints/{name}", json={"inputs": ["a gpu answer", "another one"]})
    assert response.status_code == 200, response.text
    answers = [entry[0] if isinstance(entry, list) else entry for entry in response.json()]
    assert len(answers) == 2 and all(answer["label"] in ("NEGATIVE", "POSITIVE") for answer in answers)
    assert gpu_pids(), "no process holds GPU memory: the replica did not run on CUDA"
    api.delete(f"/v1/endpoints/{name}")
