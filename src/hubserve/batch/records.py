"""Input files -> records (request bodies) and results -> output lines.

How a record becomes a request body, as the Hugging Face inference toolkit reads SageMaker's
batch transform requests:
- ``application/jsonlines``, split ``line``: each non-blank line is a JSON value. An object with an
  ``inputs`` field is sent as it is (with its ``parameters``); any other value ``v`` is sent as
  ``{"inputs": v}`` (the toolkit's ``data.pop("inputs", data)``).
- ``text/csv``, split ``line``: the toolkit's CSV decoder wants a header row naming an ``inputs``
  column (or ``question`` and ``context``). When the file's first line has one, it is the header
  and each later line is a row: ``{"inputs": row["inputs"]}``, or ``{"inputs": {"question",
  "context"}}``. Without such a header every line is a record: one field gives
  ``{"inputs": field}``, several ``{"inputs": [fields]}``. A quoted field cannot span lines.
- ``text/plain``, split ``line``: each non-blank line gives ``{"inputs": line}``.
- split ``none``: the whole file is one record (JSON, a CSV table whose ``inputs`` column becomes
  one list, or the text).
Blank lines are not records; line numbers (for the errors file) count every physical line from 1.

Each record also carries ``source``, the JSON of the record as read, for ``join_source: input``:
the line's JSON value; a CSV row as an object keyed by the header (a string or a list of fields
without one); the text line.
"""

from __future__ import annotations

import csv
import io
import json
from dataclasses import dataclass
from typing import IO, Any

_HEADER_COLUMNS = ("inputs", "question", "context")  # the toolkit's header detection


@dataclass(frozen=True)
class Record:
    """One record: where it ends in its file, its request body or why it has none."""

    line: int  # 1-based line number of the record's (last) line
    end: int  # input byte offset just after the record
    body: bytes | None  # the JSON request body; None when the record cannot be read
    source: bytes  # JSON of the record as read (join_source)
    error: str | None = None  # why ``body`` is None


class RecordReader:
    """Reads records from a binary file, starting at a committed ``offset`` (``line`` lines in)."""

    def __init__(self, file: IO[bytes], split_type: str, content_type: str, *, offset: int = 0, line: int = 0) -> None:
        self._file = file
        self._split = split_type
        self._type = content_type
        self._line = line
        self._offset = offset
        self._header: list[str] | None = None
        if content_type == "text/csv" and split_type == "line":
            file.seek(0)
            first = file.readline()
            header = _parse_header(first)
            if header is not None:
                self._header = header
                if offset == 0:  # the header is not a record
                    self._offset, self._line = len(first), 1
        file.seek(self._offset)

    def read(self, count: int) -> list[Record]:
        """The next ``count`` records (fewer at the end of the file, none after it)."""
        if self._split == "none":
            return self._read_whole() if count > 0 else []
        records: list[Record] = []
        while len(records) < count:
            raw = self._file.readline()
            if not raw:
                break
            self._offset += len(raw)
            self._line += 1
            text = raw.decode("utf-8", errors="replace").rstrip("\r\n")
            if not text.strip():
                continue
            records.append(self._record(text))
        return records

    def count(self) -> int:
        """Records left from here to the end, without building their bodies."""
        if self._split == "none":
            return 0 if self._offset > 0 else 1
        return sum(1 for raw in self._file if raw.strip())

    def _read_whole(self) -> list[Record]:
        if self._offset > 0:
            return []
        data = self._file.read()
        self._offset = len(data)
        self._line = data.count(b"\n") + (0 if data.endswith(b"\n") or not data else 1)
        text = data.decode("utf-8", errors="replace")
        try:
            if self._type == "text/csv":
                value, source = _csv_table(text)
                return [Record(1, self._offset, _dumps({"inputs": value}), _dumps(source))]
            if self._type == "text/plain":
                return [Record(1, self._offset, _dumps({"inputs": text}), _dumps(text))]
            return [_json_record(1, self._offset, text)]
        except ValueError as exc:
            return [Record(1, self._offset, None, _dumps(text), str(exc))]

    def _record(self, text: str) -> Record:
        if self._type == "text/plain":
            return Record(self._line, self._offset, _dumps({"inputs": text}), _dumps(text))
        if self._type == "text/csv":
            try:
                fields = next(csv.reader([text]))
            except (csv.Error, StopIteration) as exc:
                return Record(self._line, self._offset, None, _dumps(text), f"not a CSV row: {exc}")
            if self._header is not None:
                if len(fields) != len(self._header):
                    message = f"the row has {len(fields)} fields, the header {len(self._header)}"
                    return Record(self._line, self._offset, None, _dumps(text), message)
                row = dict(zip(self._header, fields, strict=True))
                return Record(self._line, self._offset, _dumps({"inputs": _inputs_of_row(row)}), _dumps(row))
            value: Any = fields[0] if len(fields) == 1 else fields
            return Record(self._line, self._offset, _dumps({"inputs": value}), _dumps(value))
        return _json_record(self._line, self._offset, text)


def _json_record(line: int, end: int, text: str) -> Record:
    stripped = text.strip()
    try:
        value = json.loads(stripped)
    except ValueError as exc:
        return Record(line, end, None, _dumps(text), f"not valid JSON: {exc}")
    source = stripped.encode()
    if isinstance(value, dict) and "inputs" in value:
        return Record(line, end, source, source)  # sent as written: no re-encoding
    return Record(line, end, _dumps({"inputs": value}), source)


def _parse_header(first: bytes) -> list[str] | None:
    """The header of a CSV file when its first line names the toolkit's columns, else None."""
    try:
        fields = next(csv.reader([first.decode("utf-8", errors="replace").rstrip("\r\n")]))
    except (csv.Error, StopIteration):
        return None
    names = [field.strip().lower() for field in fields]
    if "inputs" in names or {"question", "context"} <= set(names):
        return names
    return None


def _inputs_of_row(row: dict[str, str]) -> Any:
    if "inputs" in row:
        return row["inputs"]
    return {"question": row["question"], "context": row["context"]}


def _csv_table(text: str) -> tuple[Any, Any]:
    """A whole CSV file as one record: the toolkit's decode_csv (a header row is required)."""
    lines = text.splitlines()
    header = _parse_header(lines[0].encode()) if lines else None
    if header is None:
        raise ValueError("a CSV file read whole needs a header row naming an 'inputs' column (or 'question' and 'context')")
    rows = [dict(zip(header, fields, strict=False)) for fields in csv.reader(io.StringIO("\n".join(lines[1:]))) if fields]
    return [_inputs_of_row(row) for row in rows], rows


def _dumps(value: Any) -> bytes:
    return json.dumps(value, ensure_ascii=False, separators=(",", ":")).encode()


# -- output ----------------------------------------------------------------------------------------


def result_line(result: bytes | None, error: tuple[str, str] | None, source: bytes, join_source: bool) -> bytes:
    """One output line: the replica's JSON answer, or ``{"error": {...}}`` for a failed record.

    A failed record keeps its line so that line N of the output always answers record N.
    """
    output = result if error is None and result is not None else _dumps({"error": {"type": error[0], "message": error[1]}} if error else None)
    if join_source:
        return b'{"input":' + source + b',"output":' + output + b"}\n"
    return output + b"\n"


def error_line(name: str, line: int, error: tuple[str, str]) -> bytes:
    """One line of errors.jsonl: which file and line failed, and why."""
    return _dumps({"file": name, "line": line, "type": error[0], "message": error[1]}) + b"\n"


def as_json_value(body: bytes, content_type: str) -> bytes:
    """A replica's answer as one JSON value on one line (custom code may answer other types)."""
    media = content_type.split(";", 1)[0].strip().lower()
    if media in ("application/json", "") or media.endswith("+json"):
        return body.replace(b"\n", b" ") if b"\n" in body else body
    return _dumps(body.decode("utf-8", errors="replace"))

