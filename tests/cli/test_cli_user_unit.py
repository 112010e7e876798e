"""The CLI as a person meets it (issue 14, part D), without a hubserve server: hints in the CLI's
words, --wait's phase lines, delete's confirmation at a real terminal and without one, and spec
files read by their suffix with the format's own error.

Server answers come from the canned HTTP server of test_cli_unit.py; the terminal is a real pty.
"""

from __future__ import annotations

import json
import os
import pty
import re
import select
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
import test_cli_unit
from test_cli_unit import CannedServer, _error, describe_

from hubserve.cli.common import format_error
from hubserve.cli.hints import in_cli_words
from hubserve.errors import EndpointExists, EndpointNotFound, ModelNotReady

canned = test_cli_unit.canned  # the fixtures: a canned HTTP server, and the CLI pointed at it
cli = test_cli_unit.cli

# --- hints --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("server_says", "cli_says"),
    [
        ("Endpoint 'minilm' is paused; resume it with POST /v1/endpoints/minilm/resume.",
         "Endpoint 'minilm' is paused; resume it with `hubserve endpoint resume minilm`."),
        ("Endpoint 'x' does not exist. List endpoints with GET /v1/endpoints.",
         "Endpoint 'x' does not exist. List endpoints with `hubserve endpoint list`."),
        ("Endpoint 'x' already exists. Update it with PUT /v1/endpoints/x or choose another name.",
         "Endpoint 'x' already exists. Update it with `hubserve endpoint update x -f SPEC` or choose another name."),
        ("Endpoint 'e' has no async inference 'i'. List them with GET /endpoints/e/async-invocations.",
         "Endpoint 'e' has no async inference 'i'. List them with `hubserve async list e`."),
        ("Batch job 'b' does not exist. List batch jobs with GET /v1/batch-jobs.",
         "Batch job 'b' does not exist. List batch jobs with `hubserve batch list`."),
        ("stop it (POST /v1/endpoints/a/pause), then scale it (POST /v1/endpoints/a/scale-to-zero)",
         "stop it (`hubserve endpoint pause a`), then scale it (`hubserve endpoint scale-to-zero a`)"),
        ("GET /v1/endpoints/x/metrics?window=5m answered 404", "GET /v1/endpoints/x/metrics?window=5m answered 404"),
        ("POST /v2/endpoint/ns has no CLI command", "POST /v2/endpoint/ns has no CLI command"),
    ],
)
def test_routes_in_messages_become_commands(server_says: str, cli_says: str) -> None:
    assert in_cli_words(server_says) == cli_says


def test_error_lines_name_commands_not_routes() -> None:
    for error in (EndpointNotFound("x"), EndpointExists("x")):
        error.status, error.type = type(error).status, type(error).type
        line = format_error(error)
        assert "hubserve endpoint" in line and "/v1/" not in line, line
    paused = ModelNotReady("Endpoint 'm' is paused; resume it with POST /v1/endpoints/m/resume.")
    assert format_error(paused) == (
        "Error (503 ModelNotReadyException): Endpoint 'm' is paused; resume it with `hubserve endpoint resume m`."
    )
    assert "/v1/endpoints/m/resume" in paused.to_dict()["error"]["message"]  # the API body keeps its route


# --- --wait shows the phases ---------------------------------------------------------------------


def _phase_lines(stderr: str) -> list[str]:
    """The lines --wait printed, without their seconds: ['initializing: exporting ...', 'running']."""
    return [re.sub(r"^\s*\d+s\s+", "", line) for line in stderr.splitlines() if re.match(r"^\s*\d+s\s", line)]


def test_create_wait_prints_each_new_state_and_reason(cli: Any, canned: CannedServer) -> None:
    step = "exporting to ONNX (step 1 of 3)"
    canned.route("POST", "/v1/endpoints", (201, describe_(state="pending")))
    canned.route(
        "GET", "/v1/endpoints/sst2",
        (200, describe_(state="initializing", reason=step)),
        (200, describe_(state="initializing", reason=step)),  # unchanged: no second line
        (200, describe_(state="initializing", reason="quantizing to int8 (step 2 of 3)")),
        (200, describe_(state="running")),
    )  # fmt: skip
    result = cli("endpoint", "create", "sst2", "--model", "/models/sst2", "--wait", "--timeout", "30")
    assert result.exit_code == 0, result.output
    assert _phase_lines(result.stderr) == [f"initializing: {step}", "initializing: quantizing to int8 (step 2 of 3)", "running"]
    assert "running" in result.stdout


def test_pause_and_scale_to_zero_wait_for_their_own_state(cli: Any, canned: CannedServer) -> None:
    canned.route("POST", "/v1/endpoints/sst2/pause", (200, describe_(state="pausing", reason="finishing 2 requests")))
    canned.route("GET", "/v1/endpoints/sst2", (200, describe_(state="pausing", reason="finishing 2 requests")),
                 (200, describe_(state="paused")))  # fmt: skip
    result = cli("endpoint", "pause", "sst2", "--wait", "--timeout", "30")
    assert result.exit_code == 0, result.output
    assert result.stdout.strip() == "Endpoint 'sst2': paused"
    assert _phase_lines(result.stderr) == ["pausing: finishing 2 requests", "paused"]

    canned.route("POST", "/v1/endpoints/sst2/scale-to-zero", (200, describe_(state="running")))
    canned.route("GET", "/v1/endpoints/sst2", (200, describe_(state="running")), (200, describe_(state="scaledToZero")))
    result = cli("endpoint", "scale-to-zero", "sst2", "--wait", "--timeout", "30")
    assert result.exit_code == 0, result.output
    assert result.stdout.strip() == "Endpoint 'sst2': scaledToZero"


def test_wait_that_runs_out_says_where_it_stopped(cli: Any, canned: CannedServer) -> None:
    canned.route("POST", "/v1/endpoints/sst2/pause", (200, describe_(state="pausing", reason="finishing 1 request")))
    canned.route("GET", "/v1/endpoints/sst2", (200, describe_(state="pausing", reason="finishing 1 request")))
    result = cli("endpoint", "pause", "sst2", "--wait", "--timeout", "1")
    assert result.exit_code == 1
    assert "is still pausing after 1s (waiting for paused): finishing 1 request" in result.stderr


# --- delete asks at a terminal, and only there ---------------------------------------------------


def _at_a_terminal(canned: CannedServer, answer: bytes) -> tuple[int, str]:
    """`hubserve endpoint delete sst2` with a real pty as its terminal; types ``answer`` at the prompt."""
    leader, follower = pty.openpty()
    env = {**os.environ, "HUBSERVE_URL": canned.url, "TERM": "dumb", "COLUMNS": "120"}
    env.pop("HUBSERVE_TOKEN", None)
    process = subprocess.Popen([sys.executable, "-m", "hubserve", "endpoint", "delete", "sst2"],
                               stdin=follower, stdout=follower, stderr=follower, env=env, close_fds=True)  # fmt: skip
    os.close(follower)
    seen, deadline = b"", time.monotonic() + 60
    answered = False
    while time.monotonic() < deadline:
        ready, _, _ = select.select([leader], [], [], 0.2)
        if ready:
            try:
                chunk = os.read(leader, 4096)
            except OSError:  # the child closed the terminal
                break
            if not chunk:
                break
            seen += chunk
        if not answered and b"[y/N]" in seen:
            os.write(leader, answer)
            answered = True
        if process.poll() is not None and not ready:
            break
    os.close(leader)
    return process.wait(10), seen.decode(errors="replace").replace("\r\n", "\n")


def test_delete_at_a_terminal_asks(canned: CannedServer) -> None:
    canned.route("DELETE", "/v1/endpoints/sst2", (202, describe_(state="deleting")))
    code, screen = _at_a_terminal(canned, b"n\n")
    assert code == 1 and canned.sent("DELETE") == []
    assert "Error: not deleting: not confirmed (pass --yes to delete without asking)" in screen

    code, screen = _at_a_terminal(canned, b"\x04")  # Ctrl-D: the error starts on a line of its own
    assert code == 1 and canned.sent("DELETE") == []
    assert re.search(r"\[y/N\]: ?\nError: not deleting", screen), screen

    code, screen = _at_a_terminal(canned, b"y\n")
    assert code == 0 and len(canned.sent("DELETE")) == 1
    assert "Endpoint 'sst2': deleting" in screen


def test_delete_without_a_terminal_names_yes(canned: CannedServer) -> None:
    env = {**os.environ, "HUBSERVE_URL": canned.url}
    done = subprocess.run([sys.executable, "-m", "hubserve", "endpoint", "delete", "sst2"], stdin=subprocess.DEVNULL,
                          capture_output=True, text=True, env=env, timeout=60, check=False)  # fmt: skip
    assert done.returncode == 1 and canned.requests == []
    assert done.stderr == "Error: not deleting: stdin is not a terminal to confirm on; pass --yes to delete without asking\n"


# --- spec files: the suffix picks the format, and its error --------------------------------------

BAD_JSON = '{\n  "name": "sst2",\n  "model": {"source": "/m"}\n  "compute": {}\n}\n'


def test_json_files_get_jsons_error_in_every_command(cli: Any, canned: CannedServer, tmp_path: Path) -> None:
    spec = tmp_path / "spec.json"
    spec.write_text(BAD_JSON)
    expected = f"Error: {spec} is not valid JSON: Expecting ',' delimiter at line 4, column 3\n"
    for command in (("endpoint", "create", "-f"), ("endpoint", "update", "sst2", "-f"), ("apply", "--yes", "-f"), ("plan", "-f")):
        result = cli(*command, str(spec))
        assert result.exit_code == 1, (command, result.output)
        assert result.stderr == expected, command
    assert canned.requests == [] or all(r.method == "GET" for r in canned.requests)


def test_yaml_files_get_yamls_error_in_every_command(cli: Any, tmp_path: Path) -> None:
    spec = tmp_path / "spec.yml"
    spec.write_text("name: sst2\nmodel: {source: /m\ncompute: {}\n")
    messages = {cli(*command, str(spec)).stderr for command in (("endpoint", "create", "-f"), ("plan", "-f"))}
    assert len(messages) == 1, messages
    [message] = messages
    assert message.startswith(f"Error: {spec} is not valid YAML: ") and re.search(r"at line \d+, column \d+\n$", message)


def test_a_json_suffix_is_not_read_as_yaml(cli: Any, canned: CannedServer, tmp_path: Path) -> None:
    spec = tmp_path / "spec.json"
    spec.write_text("name: sst2\nmodel: {source: /m}\n")  # valid YAML, but the file says JSON
    result = cli("endpoint", "create", "-f", str(spec))
    assert result.exit_code == 1 and "is not valid JSON: Expecting value at line 1, column 1" in result.stderr
    good = tmp_path / "good.json"
    good.write_text(json.dumps({"name": "sst2", "model": {"source": "/m"}}))
    canned.route("POST", "/v1/endpoints", (201, describe_()))
    assert cli("endpoint", "create", "-f", str(good)).exit_code == 0
    assert canned.sent("POST")[0].json()["model"] == {"source": "/m"}


def test_wrong_type_from_the_server_reads_as_one_line(cli: Any, canned: CannedServer) -> None:
    message = ("compute.memory_mb: memory_mb must be a whole number of MB, one of 1024, 2048, 3072, 4096, 5120, "
               "6144 (1024..6144 in steps of 1024); got '4GB'")  # fmt: skip
    canned.route("POST", "/v1/endpoints", _error(422, "ValidationError", f"The endpoint spec is invalid: {message}",
                                                 [{"field": "compute.memory_mb", "message": message.split(": ", 1)[1]}]))  # fmt: skip
    result = cli("endpoint", "create", "sst2", "--model", "/m")
    assert result.exit_code == 1
    assert result.stderr == f"Error (422 ValidationError): The endpoint spec is invalid: {message}\n"
