"""CSV bodies and answers as SageMaker's Hugging Face inference toolkit has them (``text/csv``).

Decoding: the first row names the columns; a column ``inputs`` gives ``{"inputs": [row values]}``,
other columns (``question``, ``context``) give ``{"inputs": [row dicts]}``. Encoding: a list of
flat objects becomes a header row and one row per object (a list of lists, as ``top_k`` answers
are, is flattened one level), as the toolkit's ``encode_csv`` writes it.
"""

from __future__ import annotations

import csv
import io
from typing import Any

from hubserve.errors import ValidationError

CSV = "text/csv"
_HEADERS = ("inputs", "question", "context")


def decode_csv(body: bytes) -> dict[str, Any]:
    """A CSV body as the toolkit's ``{"inputs": [...]}``; ValidationError says what is missing."""
    text = body.decode("utf-8-sig", errors="replace")
    lines = text.splitlines()
    if not lines or not any(name in lines[0].lower() for name in _HEADERS):
        raise ValidationError(
            "A text/csv body needs a header row naming its columns: 'inputs' "
            "(or 'question' and 'context' for question answering), then one row per input."
        )
    rows = list(csv.DictReader(io.StringIO(text)))
    if not rows:
        raise ValidationError("The text/csv body has a header row but no rows.")
    if "inputs" in rows[0]:
        return {"inputs": [row["inputs"] for row in rows]}
    return {"inputs": rows}


def encode_csv(result: Any) -> bytes:
    """An answer as CSV, or ValidationError when it is not a list of flat objects."""
    rows = result if isinstance(result, list) else [result]
    if rows and all(isinstance(row, list) for row in rows):
        rows = [item for row in rows for item in row]
    if not rows or not all(isinstance(row, dict) for row in rows):
        raise ValidationError("This task's answer cannot be written as CSV; send Accept: application/json.")
    columns = list(dict.fromkeys(key for row in rows for key in row))
    stream = io.StringIO()
    writer = csv.DictWriter(stream, columns)
    writer.writeheader()
    writer.writerows(rows)
    return stream.getvalue().encode()


def wants_csv(accept: str) -> bool:
    """Whether the first media type the client accepts is text/csv."""
    return accept.split(",", 1)[0].split(";", 1)[0].strip().lower() == CSV
