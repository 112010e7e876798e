"""The Ray Data computer's pieces that need no cluster: lazy Ray, batching as the replica's batcher, answers.

The whole path runs on a real two-node cluster in tests/ray/test_ray_data_batch.py.
"""

from __future__ import annotations

import subprocess
import sys

import pytest

from hubserve.batch.execution import JobFailed
from hubserve.batch.ray_data import _answer, _take
from hubserve.errors import ValidationError
from hubserve.types import InvocationResult
from hubserve.worker.batcher import Pending


def test_the_batch_package_does_not_import_ray() -> None:
    code = (
        "import sys, hubserve.batch.runner, hubserve.batch.through_gateway, hubserve.batch.ray_data; "
        "print('ray' in sys.modules)"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60)
    assert result.stdout.strip() == "False"


def test_take_batches_as_the_replica_batcher_does() -> None:
    queue = [Pending("a", key="k", sequences=2, tokens=10), Pending("b", key="other"), Pending("c", key="k", sequences=2),
             Pending("d", key="k", sequences=1, tokens=95), Pending("e", key="k"), Pending("f", key=None)]  # fmt: skip
    batch, rest = _take(queue, max_sequences=5, max_tokens=100)
    assert [p.payload for p in batch] == ["a", "c", "e"]  # d does not fit the tokens, b has another key
    assert [p.payload for p in rest] == ["b", "d", "f"]
    assert [p.payload for p in _take([Pending("alone"), Pending("x", key=None)], 8, 8)[0]] == ["alone"]


def test_result_rows_become_the_gateway_answers() -> None:
    ok = _answer({"ok": True, "body": b'[{"label": "POSITIVE"}]', "content_type": "application/json"})
    assert isinstance(ok, InvocationResult) and ok.body == b'[{"label": "POSITIVE"}]'
    refused = _answer({"ok": False, "error_type": "ValidationError", "error_message": "must be a string"})
    assert isinstance(refused, ValidationError) and refused.message == "must be a string"
    assert _answer(None) is None
    with pytest.raises(JobFailed, match="could not start: OSError: no weights"):
        _answer({"ok": False, "error_type": "ModelLoadFailed", "error_message": "OSError: no weights"})
