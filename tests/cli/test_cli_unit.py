"""The `hubserve` CLI without a hubserve server: spec files and flags, rendering, errors.

Commands run through typer's CliRunner against a tiny real HTTP server on
127.0.0.1 that answers canned responses and records what the CLI sent.
"""

from __future__ import annotations

import io
import json
import socket
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
import typer
from typer.testing import CliRunner

from hubserve.cli.common import format_error
from hubserve.cli.main import app
from hubserve.cli.specs import (
    SpecFileError,
    SpecFlags,
    load_spec_file,
    parse_spec_text,
    patch_from_flags,
    spec_from_flags,
)
from hubserve.errors import EndpointNotFound, SpecError
from hubserve.sdk import ServerUnreachable

# --- a canned HTTP server --------------------------------------------------------


@dataclass
class Recorded:
    method: str
    path: str
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)


class _Handler(BaseHTTPRequestHandler):
    server: CannedServer

    def _serve(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        self.server.requests.append(
            Recorded(self.command, self.path, dict(self.headers), self.rfile.read(length) if length else b"")
        )
        replies = self.server.routes.get((self.command, self.path)) or [
            (404, {"error": {"type": "NotRouted", "message": f"no canned {self.command} {self.path}"}})
        ]
        status, payload, headers = (*(replies.pop(0) if len(replies) > 1 else replies[0]), None)[:3]
        data = json.dumps(payload).encode() if isinstance(payload, (dict, list)) else bytes(payload)
        self.send_response(status)
        headers = {"Content-Type": "application/json", **(headers or {})}
        for key, value in headers.items():
            self.send_header(key, value)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = _serve

    def log_message(self, *args: Any) -> None:
        pass


class CannedServer(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.routes: dict[tuple[str, str], list[tuple[Any, ...]]] = {}
        self.requests: list[Recorded] = []
        self.url = f"http://127.0.0.1:{self.server_address[1]}"

    def route(self, method: str, path: str, *replies: tuple[Any, ...]) -> None:
        self.routes[(method, path)] = list(replies)

    def sent(self, method: str) -> list[Recorded]:
        return [r for r in self.requests if r.method == method]


@pytest.fixture
def canned() -> Iterator[CannedServer]:
    server = CannedServer()
    threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.01}, daemon=True).start()
    yield server
    server.shutdown()
    server.server_close()


@pytest.fixture
def cli(canned: CannedServer, monkeypatch: pytest.MonkeyPatch) -> Any:
    """Run `hubserve ARGS` against the canned server (through HUBSERVE_URL, as a user would)."""
    monkeypatch.setenv("HUBSERVE_URL", canned.url)
    monkeypatch.delenv("HUBSERVE_TOKEN", raising=False)
    runner = CliRunner()

    def run(*args: str, input: str | None = None) -> Any:
        return runner.invoke(app, list(args), input=input)

    return run


def describe_(name: str = "sst2", state: str = "running", **extra: Any) -> dict[str, Any]:
    return {
        "name": name,
        "model": {"source": "/models/sst2", "revision": None, "task": "text-classification"},
        "compute": {"type": "serverless", "memory_mb": 4096, "max_concurrency": 10},
        "env": {"LOG_LEVEL": "debug"},
        "custom_code": False,
        "state": state,
        "reason": None,
        "url": f"http://127.0.0.1:8080/endpoints/{name}",
        "created_at": "2025-01-01T00:00:00Z",
        "updated_at": "2025-01-01T00:00:01Z",
        "replicas": {"ready": 1, "desired": 2},
        "notes": ["vCPUs derived from memory: 2"],
        **extra,
    }


def _error(status: int, type_name: str, message: str, details: Any = None) -> tuple[Any, ...]:
    body: dict[str, Any] = {"type": type_name, "message": message}
    if details:
        body["details"] = details
    return (status, {"error": body}, {"x-amzn-ErrorType": type_name})


SPEC = {
    "name": "sst2",
    "model": {"source": "/models/sst2", "task": "text-classification"},
    "compute": {"type": "serverless", "memory_mb": 4096, "max_concurrency": 10},
    "env": {},
    "custom_code": False,
}
SPEC_YAML = """\
name: sst2
model:
  source: /models/sst2
  task: text-classification
compute:
  type: serverless
  memory_mb: 4096
  max_concurrency: 10
env: {}
custom_code: false
"""

# --- spec files and flags (pure) ------------------------------------------------


def test_spec_text_parses_json_and_yaml_alike() -> None:
    assert parse_spec_text(json.dumps(SPEC)) == SPEC
    assert parse_spec_text(SPEC_YAML) == SPEC


@pytest.mark.parametrize(("text", "message"), [("", "it is empty"), ("- a\n- b\n", "it is a list"), ("a: [", "x.yaml is not valid YAML: .* at line 1, column 5")])
def test_spec_text_must_be_a_mapping(text: str, message: str) -> None:
    with pytest.raises(SpecFileError, match=message):
        parse_spec_text(text, source="x.yaml")


def test_spec_file_from_path_and_stdin(tmp_path: Path) -> None:
    (tmp_path / "spec.yaml").write_text(SPEC_YAML)
    assert load_spec_file(str(tmp_path / "spec.yaml")) == SPEC
    assert load_spec_file("-", stdin=io.StringIO(json.dumps(SPEC))) == SPEC
    with pytest.raises(SpecFileError, match="cannot read spec file"):
        load_spec_file(str(tmp_path / "missing.yaml"))


def test_flags_make_a_serverless_spec_by_default() -> None:
    flags = SpecFlags(model="/m", task="ner", memory_mb=1024, env=["A=1", "B=x=y", "C="], custom_code=True)
    assert spec_from_flags("ner", flags) == {
        "name": "ner",
        "model": {"source": "/m", "task": "ner"},
        "compute": {"type": "serverless", "memory_mb": 1024},
        "env": {"A": "1", "B": "x=y", "C": ""},
        "custom_code": True,
    }
    assert spec_from_flags("x", SpecFlags(model="org/repo", revision="main")) == {
        "name": "x",
        "model": {"source": "org/repo", "revision": "main"},
    }


def test_dedicated_flags_imply_dedicated_compute() -> None:
    spec = spec_from_flags("x", SpecFlags(model="/m", instance="cpu-small", max_replicas=2))
    assert spec["compute"] == {"type": "dedicated", "instance": "cpu-small", "max_replicas": 2}
    spec = spec_from_flags("x", SpecFlags(model="/m", serverless=False, min_replicas=0))
    assert spec["compute"] == {"type": "dedicated", "min_replicas": 0}


def test_flags_override_a_file_spec_and_can_switch_its_compute() -> None:
    spec = spec_from_flags("other", SpecFlags(serverless=False, instance="cpu-medium"), base=dict(SPEC))
    assert spec["name"] == "other"
    assert spec["compute"] == {"type": "dedicated", "instance": "cpu-medium"}
    assert spec["model"] == SPEC["model"]


@pytest.mark.parametrize(
    "flags",
    [
        SpecFlags(model="/m", serverless=True, instance="cpu-small"),
        SpecFlags(model="/m", serverless=False, memory_mb=1024),
        SpecFlags(model="/m", memory_mb=1024, min_replicas=1),
        SpecFlags(model="/m", env=["NOEQUALS"]),
    ],
)
def test_contradictory_flags_are_usage_errors(flags: SpecFlags) -> None:
    with pytest.raises(typer.BadParameter):
        spec_from_flags("x", flags)


def test_create_needs_a_name_and_a_model() -> None:
    with pytest.raises(typer.BadParameter, match="NAME"):
        spec_from_flags(None, SpecFlags(model="/m"))
    with pytest.raises(typer.BadParameter, match="--model"):
        spec_from_flags("x", SpecFlags())


def test_update_flags_make_a_merge_patch() -> None:
    assert patch_from_flags(SpecFlags()) == {}
    assert patch_from_flags(SpecFlags(revision="v2", env=["A=1"], custom_code=False)) == {
        "model": {"revision": "v2"},
        "env": {"A": "1"},
        "custom_code": False,
    }
    patch = patch_from_flags(SpecFlags(serverless=False, max_replicas=3))
    assert patch["compute"]["type"] == "dedicated" and patch["compute"]["max_replicas"] == 3
    # switching type clears the other type's fields (null = remove, RFC 7386)
    assert patch["compute"]["memory_mb"] is None and patch["compute"]["max_concurrency"] is None
    assert "min_replicas" not in patch["compute"]


def test_error_lines() -> None:
    error = EndpointNotFound("x")
    assert format_error(error) == "Error (404 EndpointNotFound): Endpoint 'x' does not exist. List endpoints with `hubserve endpoint list`."
    spec_error = SpecError("Invalid endpoint spec.", details=[{"field": "name", "message": "must be DNS-safe"}])
    assert format_error(spec_error) == "Error (422 ValidationError): Invalid endpoint spec: name: must be DNS-safe"
    summarised = SpecError("The endpoint spec is invalid: name: must be DNS-safe", details=spec_error.details)
    assert format_error(summarised) == "Error (422 ValidationError): The endpoint spec is invalid: name: must be DNS-safe"
    assert format_error(ServerUnreachable("hubserve isn't reachable")) == "Error: hubserve isn't reachable"


# --- commands --------------------------------------------------------------------


def test_help_and_version(cli: Any) -> None:
    result = cli("--help")
    assert result.exit_code == 0
    for command in ("endpoint", "invoke", "serve", "quickstart"):
        assert command in result.stdout
    result = cli("--version")
    assert (result.exit_code, result.stdout.strip()) == (0, "hubserve 0.1.0")
    assert cli("endpoint", "--help").exit_code == 0


def test_create_from_yaml_file(cli: Any, canned: CannedServer, tmp_path: Path) -> None:
    (tmp_path / "spec.yaml").write_text(SPEC_YAML)
    canned.route("POST", "/v1/endpoints", (201, describe_(state="pending")))
    result = cli("endpoint", "create", "-f", str(tmp_path / "spec.yaml"))
    assert result.exit_code == 0, result.output
    assert canned.sent("POST")[0].json() == SPEC
    assert "pending" in result.stdout and "http://127.0.0.1:8080/endpoints/sst2" in result.stdout
    assert "model.source" in result.stdout


def test_create_from_stdin_as_json(cli: Any, canned: CannedServer) -> None:
    canned.route("POST", "/v1/endpoints", (201, describe_(state="pending")))
    result = cli("endpoint", "create", "-f", "-", "--json", input=json.dumps(SPEC))
    assert result.exit_code == 0, result.output
    assert canned.sent("POST")[0].json() == SPEC
    assert json.loads(result.stdout)["state"] == "pending"


def test_create_from_flags_and_wait(cli: Any, canned: CannedServer) -> None:
    canned.route("POST", "/v1/endpoints", (201, describe_("ner", state="pending")))
    canned.route(
        "GET", "/v1/endpoints/ner", (200, describe_("ner", state="initializing")), (200, describe_("ner"))
    )
    result = cli(
        "endpoint", "create", "ner", "--model", "/models/ner", "--task", "token-classification",
        "--memory-mb", "2048", "--max-concurrency", "3", "--env", "A=1", "--env", "B=2", "--wait", "--json",
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    assert canned.sent("POST")[0].json() == {
        "name": "ner",
        "model": {"source": "/models/ner", "task": "token-classification"},
        "compute": {"type": "serverless", "memory_mb": 2048, "max_concurrency": 3},
        "env": {"A": "1", "B": "2"},
    }
    assert json.loads(result.stdout)["state"] == "running"
    assert len(canned.sent("GET")) == 2


def test_create_wait_reports_failure(cli: Any, canned: CannedServer) -> None:
    canned.route("POST", "/v1/endpoints", (201, describe_(state="pending")))
    canned.route("GET", "/v1/endpoints/sst2", (200, describe_(state="failed", reason="no config.json in /models/sst2")))
    result = cli("endpoint", "create", "sst2", "--model", "/models/sst2", "--wait")
    assert result.exit_code == 1
    assert result.stderr.strip().splitlines()[-1] == (
        "Error (503 ModelNotReadyException): Endpoint 'sst2' failed: no config.json in /models/sst2"
    )


def test_list_renders_a_table_and_json(cli: Any, canned: CannedServer) -> None:
    dedicated = describe_(
        "big", state="scaledToZero",
        compute={"type": "dedicated", "instance": "cpu-small", "min_replicas": 0, "max_replicas": 2},
        replicas={"ready": 0, "desired": 0},
    )  # fmt: skip
    canned.route("GET", "/v1/endpoints", (200, {"items": [describe_(), dedicated]}))
    result = cli("endpoint", "list")
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    assert lines[0].split() == ["NAME", "TASK", "STATE", "REPLICAS", "COMPUTE", "URL"]
    assert lines[1].split() == [
        "sst2", "text-classification", "running", "1/2", "serverless", "4096", "MB", "http://127.0.0.1:8080/endpoints/sst2",
    ]  # fmt: skip
    assert lines[2].split()[:6] == ["big", "text-classification", "scaledToZero", "0/0", "dedicated", "cpu-small"]

    for args in (("endpoint", "list", "--json"), ("--json", "endpoint", "list")):
        result = cli(*args)
        assert [item["name"] for item in json.loads(result.stdout)] == ["sst2", "big"]


def test_list_when_empty(cli: Any, canned: CannedServer) -> None:
    canned.route("GET", "/v1/endpoints", (200, {"items": []}))
    result = cli("endpoint", "list")
    assert result.exit_code == 0 and "No endpoints yet" in result.stdout
    assert json.loads(cli("endpoint", "list", "--json").stdout) == []


def test_describe_is_a_key_value_view(cli: Any, canned: CannedServer) -> None:
    canned.route("GET", "/v1/endpoints/sst2", (200, describe_(state="failed", reason="out of memory")))
    result = cli("endpoint", "describe", "sst2")
    assert result.exit_code == 0, result.output
    rows = {line.split()[0]: line.split(None, 1)[1].strip() for line in result.stdout.splitlines() if len(line.split()) > 1}
    assert rows["state"] == "failed" and rows["reason"] == "out of memory"
    assert rows["model.source"] == "/models/sst2"
    assert rows["compute.memory_mb"] == "4096"
    assert rows["env"] == "LOG_LEVEL=debug"
    assert "1/2" in rows["replicas"]
    assert rows["notes"] == "vCPUs derived from memory: 2"
    assert json.loads(cli("endpoint", "describe", "sst2", "--json").stdout)["reason"] == "out of memory"


def test_update_with_flags_sends_a_merge_patch(cli: Any, canned: CannedServer) -> None:
    canned.route("PATCH", "/v1/endpoints/sst2", (200, describe_(state="updating")))
    result = cli("endpoint", "update", "sst2", "--max-concurrency", "20", "--no-custom-code")
    assert result.exit_code == 0, result.output
    patch = canned.sent("PATCH")[0].json()
    assert patch["custom_code"] is False
    assert patch["compute"]["type"] == "serverless" and patch["compute"]["max_concurrency"] == 20
    assert "updating" in result.stdout


def test_update_with_a_file_puts_the_whole_spec(cli: Any, canned: CannedServer, tmp_path: Path) -> None:
    spec = {k: v for k, v in SPEC.items() if k != "name"}  # the name comes from the argument
    (tmp_path / "spec.json").write_text(json.dumps(spec))
    canned.route("PUT", "/v1/endpoints/sst2", (200, describe_(state="updating")))
    result = cli("endpoint", "update", "sst2", "-f", str(tmp_path / "spec.json"), "--json")
    assert result.exit_code == 0, result.output
    assert canned.sent("PUT")[0].json() == SPEC


def test_update_without_changes_is_a_usage_error(cli: Any, canned: CannedServer) -> None:
    result = cli("endpoint", "update", "sst2")
    assert result.exit_code == 2
    assert "nothing to change" in result.stderr
    assert canned.requests == []


def test_delete_asks_unless_yes(cli: Any, canned: CannedServer) -> None:
    canned.route("DELETE", "/v1/endpoints/sst2", (202, describe_(state="deleting")))
    result = cli("endpoint", "delete", "sst2", input="y\n")  # CliRunner's stdin is no terminal: as apply, refuse
    assert result.exit_code == 1 and canned.sent("DELETE") == []
    assert result.stderr == "Error: not deleting: stdin is not a terminal to confirm on; pass --yes to delete without asking\n"
    result = cli("endpoint", "delete", "sst2", "--yes")
    assert result.exit_code == 0
    assert result.stdout.strip() == "Endpoint 'sst2': deleting"


def test_pause_and_resume(cli: Any, canned: CannedServer) -> None:
    canned.route("POST", "/v1/endpoints/sst2/pause", (200, describe_(state="paused")))
    canned.route("POST", "/v1/endpoints/sst2/resume", (200, describe_(state="pending")))
    canned.route("GET", "/v1/endpoints/sst2", (200, describe_(state="running")))
    assert cli("endpoint", "pause", "sst2").stdout.strip() == "Endpoint 'sst2': paused"
    assert cli("endpoint", "resume", "sst2").stdout.strip() == "Endpoint 'sst2': pending"
    assert cli("endpoint", "resume", "sst2", "--wait").stdout.strip() == "Endpoint 'sst2': running"
    assert json.loads(cli("endpoint", "pause", "sst2", "--json").stdout)["state"] == "paused"


_TIMING = {"x-model-latency-ms": "3.25", "x-overhead-latency-ms": "0.5", "x-cold-start": "false"}


def test_invoke_prints_json_and_timing(cli: Any, canned: CannedServer, tmp_path: Path) -> None:
    answer = [{"label": "POSITIVE", "score": 0.99}]
    canned.route("POST", "/endpoints/sst2", (200, answer, _TIMING))
    result = cli("invoke", "sst2", '{"inputs": "I love it"}')
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout) == answer
    assert canned.sent("POST")[-1].json() == {"inputs": "I love it"}

    result = cli("invoke", "sst2", "I love it", "--verbose")
    assert canned.sent("POST")[-1].json() == {"inputs": "I love it"}
    assert json.loads(result.stdout) == answer
    assert "model-latency: 3.25 ms" in result.stderr and "cold-start: false" in result.stderr

    (tmp_path / "body.json").write_text('{"inputs": ["a", "b"], "parameters": {"top_k": 2}}')
    result = cli("invoke", "sst2", "-d", f"@{tmp_path / 'body.json'}", "--json")
    assert canned.sent("POST")[-1].json() == {"inputs": ["a", "b"], "parameters": {"top_k": 2}}
    assert json.loads(result.stdout) == {
        "status": 200, "model_latency_ms": 3.25, "overhead_latency_ms": 0.5, "cold_start": False, "body": answer,
    }  # fmt: skip


def test_invoke_sagemaker_route(cli: Any, canned: CannedServer) -> None:
    canned.route("POST", "/endpoints/sst2/invocations", (200, [{"label": "NEGATIVE"}], _TIMING))
    result = cli("invoke", "sst2", "--sagemaker", "-", input='{"inputs": "meh"}')
    assert result.exit_code == 0, result.output
    request = canned.sent("POST")[-1]
    assert request.body == b'{"inputs": "meh"}' and request.headers["Content-Type"] == "application/json"
    assert json.loads(result.stdout) == [{"label": "NEGATIVE"}]


def test_invoke_needs_a_body(cli: Any, canned: CannedServer) -> None:
    assert cli("invoke", "sst2", input="").exit_code == 2
    assert cli("invoke", "sst2", "x", "-d", "y").exit_code == 2
    assert canned.requests == []


# --- errors ----------------------------------------------------------------------


def test_not_found_prints_one_line_and_exits_1(cli: Any, canned: CannedServer) -> None:
    message = "Endpoint 'nope' does not exist. List endpoints with GET /v1/endpoints."
    canned.route("GET", "/v1/endpoints/nope", _error(404, "EndpointNotFound", message))
    result = cli("endpoint", "describe", "nope")
    assert result.exit_code == 1
    assert result.stdout == ""
    assert result.stderr.splitlines() == [f"Error (404 EndpointNotFound): {message.replace('GET /v1/endpoints', '`hubserve endpoint list`')}"]


def test_spec_rejection_lists_each_field(cli: Any, canned: CannedServer) -> None:
    details = [
        {"field": "name", "message": "name must be DNS-safe"},
        {"field": "compute.memory_mb", "message": "memory_mb must be one of 1024, 2048, 3072, 4096, 5120, 6144"},
    ]
    canned.route("POST", "/v1/endpoints", _error(422, "ValidationError", "Invalid endpoint spec.", details))
    result = cli("endpoint", "create", "Bad_Name", "--model", "/m", "--memory-mb", "1000")
    assert result.exit_code == 1
    assert result.stderr.splitlines() == [
        (
            "Error (422 ValidationError): Invalid endpoint spec: name: name must be DNS-safe; "
            "compute.memory_mb: memory_mb must be one of 1024, 2048, 3072, 4096, 5120, 6144"
        )
    ]


def test_model_errors_on_invoke(cli: Any, canned: CannedServer) -> None:
    canned.route("POST", "/endpoints/sst2", _error(503, "ModelNotReadyException", "Endpoint 'sst2' is paused."))
    result = cli("invoke", "sst2", "hi")
    assert (result.exit_code, result.stderr.strip()) == (
        1, "Error (503 ModelNotReadyException): Endpoint 'sst2' is paused.",
    )  # fmt: skip


def test_bad_spec_file_is_one_line(cli: Any, tmp_path: Path) -> None:
    (tmp_path / "bad.yaml").write_text("name: [unclosed\n")
    result = cli("endpoint", "create", "-f", str(tmp_path / "bad.yaml"))
    assert result.exit_code == 1
    assert len(result.stderr.splitlines()) == 1 and result.stderr.startswith("Error: ")


def test_server_not_running(cli: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        url = f"http://127.0.0.1:{sock.getsockname()[1]}"
    result = cli("endpoint", "list", "--url", url)
    assert result.exit_code == 1
    assert len(result.stderr.splitlines()) == 1
    assert result.stderr.startswith(f"Error: hubserve isn't reachable at {url}")
    assert "hubserve serve" in result.stderr


def test_url_and_token_flags_win_over_env(cli: Any, canned: CannedServer, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HUBSERVE_URL", "http://127.0.0.1:9")  # nothing listens on the discard port
    monkeypatch.setenv("HUBSERVE_TOKEN", "from-env")
    canned.route("GET", "/v1/endpoints", (200, {"items": []}))
    assert cli("--url", canned.url, "endpoint", "list").exit_code == 0
    assert canned.requests[-1].headers["Authorization"] == "Bearer from-env"
    assert cli("endpoint", "list", "--url", canned.url, "--token", "flag").exit_code == 0
    assert canned.requests[-1].headers["Authorization"] == "Bearer flag"


def test_unauthorized(cli: Any, canned: CannedServer) -> None:
    canned.route("GET", "/v1/endpoints", _error(401, "UnauthorizedError", "Missing or invalid bearer token."))
    result = cli("endpoint", "list")
    assert (result.exit_code, result.stderr.strip()) == (
        1, "Error (401 UnauthorizedError): Missing or invalid bearer token.",
    )  # fmt: skip


def test_usage_errors_exit_2(cli: Any) -> None:
    assert cli("endpoint", "describe").exit_code == 2
    assert cli("endpoint", "create", "x").exit_code == 2  # no --model
    assert cli("endpoint", "create", "x", "--model", "/m", "--serverless", "--instance", "cpu-small").exit_code == 2
    assert cli("nope").exit_code == 2

