"""Record splitting (JSON Lines, CSV, text; line and none), resuming at an offset, output lines."""

from __future__ import annotations

import io
import json

import pytest

from hubserve.batch.records import RecordReader, error_line, result_line
from hubserve.batch.spec import BatchJobRequest, content_type_for


def read_all(data: str, content_type: str, split: str = "line", **at: int) -> list:
    reader = RecordReader(io.BytesIO(data.encode()), split, content_type, **at)
    return reader.read(1000)


def bodies(records: list) -> list:
    return [json.loads(r.body) if r.body is not None else None for r in records]


def test_jsonl_lines_are_bodies_or_wrapped_as_inputs() -> None:
    data = '{"inputs": "a", "parameters": {"top_k": 2}}\n\n"plain"\n{"text": "t", "text_pair": "p"}\n{"inputs": "broken\n'
    records = read_all(data, "application/jsonlines")
    assert bodies(records) == [
        {"inputs": "a", "parameters": {"top_k": 2}},
        {"inputs": "plain"},
        {"inputs": {"text": "t", "text_pair": "p"}},
        None,
    ]
    assert [r.line for r in records] == [1, 3, 4, 5]  # the blank line 2 is not a record, but it counts
    assert "not valid JSON" in (records[3].error or "")
    assert records[0].body == records[0].source  # sent as written
    assert json.loads(records[1].source) == "plain"


def test_resume_at_a_committed_offset_reads_on_from_there() -> None:
    data = "".join(json.dumps({"inputs": f"r{i}"}) + "\n" for i in range(10))
    reader = RecordReader(io.BytesIO(data.encode()), "line", "application/jsonlines")
    first = reader.read(4)
    rest = read_all(data, "application/jsonlines", offset=first[-1].end, line=first[-1].line)
    assert [b["inputs"] for b in bodies(first + rest)] == [f"r{i}" for i in range(10)]
    assert [r.line for r in rest] == list(range(5, 11))


def test_csv_with_an_inputs_header() -> None:
    data = 'id,inputs\n1,"hello, world"\n2,bye\n3\n'
    records = read_all(data, "text/csv")
    assert bodies(records) == [{"inputs": "hello, world"}, {"inputs": "bye"}, None]
    assert json.loads(records[0].source) == {"id": "1", "inputs": "hello, world"}
    assert [r.line for r in records] == [2, 3, 4] and "fields" in (records[2].error or "")
    resumed = read_all(data, "text/csv", offset=records[0].end, line=records[0].line)  # the header is read again
    assert bodies(resumed)[0] == {"inputs": "bye"}


def test_csv_question_context_header_and_headerless_rows() -> None:
    qa = read_all("question,context\nwho?,Ann is here\n", "text/csv")
    assert bodies(qa) == [{"inputs": {"question": "who?", "context": "Ann is here"}}]
    rows = read_all('just text\n"a, b",c\n', "text/csv")
    assert bodies(rows) == [{"inputs": "just text"}, {"inputs": ["a, b", "c"]}]


def test_text_lines_and_whole_files() -> None:
    assert bodies(read_all("one\r\ntwo\n", "text/plain")) == [{"inputs": "one"}, {"inputs": "two"}]
    assert bodies(read_all("all\nof it\n", "text/plain", "none")) == [{"inputs": "all\nof it\n"}]
    assert bodies(read_all('{"inputs": ["a", "b"]}', "application/jsonlines", "none")) == [{"inputs": ["a", "b"]}]
    assert bodies(read_all("inputs\nx\ny\n", "text/csv", "none")) == [{"inputs": ["x", "y"]}]
    [headerless] = read_all("x\ny\n", "text/csv", "none")
    assert headerless.body is None and "header" in (headerless.error or "")
    assert read_all("x", "text/plain", "none", offset=1) == []  # a whole file done is done


def test_count_skips_blank_lines_and_the_header() -> None:
    assert RecordReader(io.BytesIO(b"a\n\nb\n  \nc"), "line", "text/plain").count() == 3
    assert RecordReader(io.BytesIO(b"inputs\nx\ny\n"), "line", "text/csv").count() == 2
    assert RecordReader(io.BytesIO(b"anything"), "none", "text/plain").count() == 1


def test_output_lines_keep_one_line_per_record() -> None:
    assert result_line(b'[{"label":"POSITIVE"}]', None, b'"hi"', False) == b'[{"label":"POSITIVE"}]\n'
    joined = json.loads(result_line(b'{"x":1}', None, b'{"inputs":"hi"}', True))
    assert joined == {"input": {"inputs": "hi"}, "output": {"x": 1}}
    failed = json.loads(result_line(None, ("ModelError", "boom"), b'"hi"', True))
    assert failed == {"input": "hi", "output": {"error": {"type": "ModelError", "message": "boom"}}}
    assert json.loads(error_line("a.jsonl", 7, ("ValidationError", "bad"))) == {
        "file": "a.jsonl", "line": 7, "type": "ValidationError", "message": "bad"
    }


def test_content_type_by_suffix_unless_given() -> None:
    assert content_type_for("data/x.CSV", None) == "text/csv"
    assert content_type_for("x.txt", None) == "text/plain"
    assert content_type_for("x.jsonl", None) == "application/jsonlines"
    assert content_type_for("x.csv", "text/plain") == "text/plain"


def test_request_needs_exactly_one_model() -> None:
    with pytest.raises(ValueError, match="exactly one"):
        BatchJobRequest(input="/d", output="/o")
    with pytest.raises(ValueError, match="go with 'model'"):
        BatchJobRequest(endpoint="e", task="text-classification", input="/d", output="/o")
    assert BatchJobRequest(model="/m", input="/d", output="/o").concurrency == 2
