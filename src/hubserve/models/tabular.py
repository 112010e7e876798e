"""scikit-learn models in the Hugging Face Hub's layout, loaded safely and served many rows per call.

A Hub scikit-learn repository is a folder whose ``config.json`` holds a ``"sklearn"`` section: the model
file, its format (``skops`` or ``pickle``), the task and, for tabular tasks, the columns in the order the
model takes them. This module reads that section, loads the model and returns a predictor over the
Hugging Face Inference API's bodies:

    tabular-*            {"inputs": {"data": {"col": [v, ...], ...}}, "parameters": {"probabilities": true}?}
                         -> [prediction, ...] or [{"prediction", "probabilities": {class: p}}, ...]
    text-classification  {"inputs": "text" | ["text", ...]} -> [{"label", "score"}, ...], one per text

Loading is safe by default: a skops file loads only when every type in it is in skops' trusted list or
in the endpoint's ``model.trusted_types``; a pickle/joblib file (which runs code from the file) loads only
with ``allow_pickle: true``. Refusals raise TabularModelError, whose message says how to fix them.

The replica serving these models starts without torch: this module imports nothing heavy at import
time (numpy, pandas, skops and joblib are imported inside the functions that need them).
"""

from __future__ import annotations

import csv
import io
import json
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path, PurePosixPath
from typing import Any

from hubserve import tasks
from hubserve.errors import ValidationError

SKLEARN_SECTION = "sklearn"
TABULAR_TASKS: frozenset[str] = tasks.TABULAR_TASKS
TEXT_TASK = "text-classification"
SKLEARN_TASKS: frozenset[str] = TABULAR_TASKS | {TEXT_TASK}
PICKLE_SUFFIXES = (".pkl", ".pickle", ".joblib")
PARAMETERS = ("probabilities",)  # what a tabular body's "parameters" may hold

_TABULAR_SHAPE = '{"inputs": {"data": {"<column>": [<value>, ...], ...}}}'
_TEXT_SHAPE = '{"inputs": "I love this movie"} or {"inputs": ["I love this movie", "I hate it"]}'


class TabularModelError(Exception):
    """The folder's scikit-learn model cannot be served as it is; the message says what to change."""


# -- the config's "sklearn" section -------------------------------------------------------------


def _section(model_dir: Path) -> dict[str, Any] | None:
    path = Path(model_dir) / "config.json"
    try:
        config = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError):
        return None
    section = config.get(SKLEARN_SECTION) if isinstance(config, dict) else None
    return section if isinstance(section, dict) else None


def _require_section(model_dir: Path) -> dict[str, Any]:
    section = _section(model_dir)
    if section is None:
        raise TabularModelError(
            f"{model_dir} has no config.json with a '{SKLEARN_SECTION}' object: a scikit-learn model needs one "
            'naming its file, format and task, e.g. {"sklearn": {"model": {"file": "model.skops"}, '
            '"model_format": "skops", "task": "tabular-classification", "columns": ["a", "b"]}}'
        )
    return section


def is_sklearn_folder(model_dir: Path) -> bool:
    """Whether ``model_dir`` is in the Hub's scikit-learn layout, so it is served here and not by transformers."""
    return _section(model_dir) is not None


def sklearn_task(model_dir: Path) -> str:
    """The task the folder's config declares, so an endpoint need not name it."""
    task = _require_section(model_dir).get("task")
    if task not in SKLEARN_TASKS:
        raise TabularModelError(
            f"config.json's sklearn.task is {task!r} in {model_dir}; set it to one of "
            f"{', '.join(sorted(SKLEARN_TASKS))}, or set model.task in the endpoint spec"
        )
    return str(task)


def columns_of(model_dir: Path) -> list[str] | None:
    """The input columns in the model's order (config ``columns``, else ``example_input``'s keys).

    None for a text pipeline or a config that names no columns: then there is no CSV row layout.
    """
    section = _section(model_dir)
    if section is None or section.get("task") == TEXT_TASK:
        return None
    columns = section.get("columns")
    if isinstance(columns, list) and columns and all(isinstance(name, str) for name in columns):
        return list(columns)
    example = section.get("example_input")
    if isinstance(example, dict) and example and all(isinstance(name, str) for name in example):
        return list(example)
    return None


def _model_path(model_dir: Path, section: dict[str, Any]) -> Path:
    """The model file, which must lie inside the folder (a config must not point the loader elsewhere)."""
    model = section.get("model")
    name = model.get("file") if isinstance(model, dict) else None
    if not isinstance(name, str) or not name.strip():
        raise TabularModelError(
            f"config.json's sklearn section in {model_dir} names no model file: "
            'add "model": {"file": "model.skops"} with the file\'s path inside the folder'
        )
    relative = PurePosixPath(name.replace("\\", "/"))
    if relative.is_absolute() or ".." in relative.parts or Path(name).is_absolute():
        raise TabularModelError(
            f"sklearn.model.file {name!r} points outside {model_dir}: give a path inside the model folder"
        )
    root = Path(model_dir).resolve()
    path = (root / relative).resolve()
    if not path.is_relative_to(root):  # a symlink out of the folder
        raise TabularModelError(
            f"sklearn.model.file {name!r} resolves outside {model_dir}: copy the file into the folder"
        )
    if not path.is_file():
        raise TabularModelError(
            f"the model file {name!r} named in config.json's sklearn.model.file is not in {model_dir}: "
            "upload it or fix the name"
        )
    return path


def _format(section: dict[str, Any], name: str) -> str:
    """``skops`` or ``pickle``: the declared format, else the file's suffix."""
    declared = section.get("model_format")
    suffix = PurePosixPath(name).suffix.lower()
    if declared == "skops":
        return "skops"
    if declared == "pickle" or suffix in PICKLE_SUFFIXES:
        return "pickle"
    if declared is None and suffix == ".skops":
        return "skops"
    raise TabularModelError(
        f'config.json\'s sklearn.model_format is {declared!r} for {name}; set it to "skops" (a .skops file) or '
        '"pickle" (a .pkl/.joblib file, which also needs allow_pickle: true in the endpoint spec)'
    )


def pickled_file(model_dir: Path) -> str | None:
    """The model file's name when it would load with pickle, so the spec check can refuse it before a replica starts.

    None for a skops model and for a folder whose section is unusable (loading reports that).
    """
    section = _section(model_dir)
    if section is None:
        return None
    model = section.get("model")
    name = model.get("file") if isinstance(model, dict) else None
    if not isinstance(name, str):
        return None
    try:
        return name if _format(section, name) == "pickle" else None
    except TabularModelError:
        return None


# -- loading ------------------------------------------------------------------------------------


def load_tabular(
    model_dir: Path, task: str, *, trusted_types: Sequence[str] = (), allow_pickle: bool = False
) -> tuple[Callable[[Any], Any], list[str]]:
    """Load the folder's model for ``task``: ``(predictor, notes)``; TabularModelError if it cannot be, safely.

    ``trusted_types`` are skops types to load beyond skops' defaults (loading can run their code);
    ``allow_pickle`` lets a pickle/joblib file load (it runs any code the file holds).
    """
    model_dir = Path(model_dir)
    if task not in SKLEARN_TASKS:
        raise TabularModelError(
            f"a scikit-learn model serves {', '.join(sorted(SKLEARN_TASKS))}; got task {task!r}: "
            "set model.task to one of those"
        )
    section = _require_section(model_dir)
    declared = section.get("task")
    if declared in SKLEARN_TASKS and (declared == TEXT_TASK) != (task == TEXT_TASK):
        raise TabularModelError(
            f"config.json says this model serves {declared}, so it cannot serve {task}: "
            f"set model.task to {declared} or leave it out"
        )
    path = _model_path(model_dir, section)
    name = path.relative_to(model_dir.resolve()).as_posix()
    notes = _version_notes(section)
    if _format(section, name) == "skops":
        estimator = _load_skops(path, name, trusted_types)
    else:
        estimator = _load_pickle(path, name, allow_pickle)
        notes.insert(0, f"{name} loaded with pickle (allow_pickle: true): it can run any code it holds; prefer skops")
    if not callable(getattr(estimator, "predict", None)):
        raise TabularModelError(
            f"{name} holds a {type(estimator).__name__}, which has no predict(): save the fitted estimator"
        )
    if task == TEXT_TASK:
        return TextPipeline(estimator), notes
    columns = _expected_columns(model_dir, estimator, name)
    if columns is None:
        notes.append("config.json names no columns: each request's columns are taken in the order sent")
    return TabularPredictor(estimator, task, columns, hasattr(estimator, "feature_names_in_")), notes


def _load_skops(path: Path, name: str, trusted_types: Sequence[str]) -> Any:
    import skops.io as sio

    try:
        untrusted = sio.get_untrusted_types(file=path)
    except Exception as exc:
        raise TabularModelError(
            f"{name} is not a readable skops file ({exc}): save the model with skops.io.dump"
        ) from exc
    needed = [kind for kind in untrusted if kind not in trusted_types]
    if needed:
        raise TabularModelError(
            f"{name} holds types outside skops' trusted defaults: {', '.join(needed)}. Loading them can run their "
            f"code: only if you trust them, list them in the endpoint spec as model.trusted_types: {json.dumps(needed)}"
        )
    try:
        return sio.load(path, trusted=[t for t in untrusted if t in trusted_types])
    except Exception as exc:
        raise TabularModelError(
            f"{name} could not be loaded with skops ({type(exc).__name__}: {exc}); check that the scikit-learn "
            "version in config.json's sklearn.environment matches this server's"
        ) from exc


def _load_pickle(path: Path, name: str, allow_pickle: bool) -> Any:
    if not allow_pickle:
        raise TabularModelError(
            f"{name} is a pickle file: loading it runs any code it holds. Save the model with skops instead "
            "(skops.io.dump), or, only if you trust the file, set allow_pickle: true in the endpoint spec"
        )
    import joblib

    try:
        return joblib.load(path)
    except Exception as exc:
        raise TabularModelError(f"{name} could not be loaded with joblib ({type(exc).__name__}: {exc})") from exc


def _version_notes(section: dict[str, Any]) -> list[str]:
    """A note when the config pins another scikit-learn than this server's: predictions may differ."""
    environment = section.get("environment")
    if not isinstance(environment, list):
        return []
    try:
        installed = metadata.version("scikit-learn")
    except metadata.PackageNotFoundError:
        return []
    for entry in environment:
        if isinstance(entry, str) and entry.replace(" ", "").startswith(("scikit-learn=", "scikit-learn==")):
            wanted = entry.split("=")[-1].strip()
            if wanted and wanted != installed:
                return [f"config.json pins scikit-learn {wanted}; this server has {installed}: predictions may differ"]
    return []


def _expected_columns(model_dir: Path, estimator: Any, name: str) -> list[str] | None:
    """The columns in the order the estimator takes them, checked against what it was fitted on."""
    columns = columns_of(model_dir)
    fitted = getattr(estimator, "feature_names_in_", None)
    if fitted is not None:
        fitted = [str(column) for column in fitted]
        if columns is not None and set(columns) != set(fitted):
            raise TabularModelError(
                f"config.json's sklearn columns {columns} differ from the columns {name} was fitted on {fitted}: "
                "fix the config's columns"
            )
        return fitted  # the same names, in the order the estimator checks
    width = getattr(estimator, "n_features_in_", None)
    if columns is not None and isinstance(width, int) and width != len(columns):
        raise TabularModelError(
            f"config.json's sklearn section lists {len(columns)} columns but {name} was fitted on {width} features: "
            "fix the config's columns"
        )
    return columns


# -- predictors ---------------------------------------------------------------------------------


def _body(data: Any, task: str, shape: str) -> tuple[Any, dict[str, Any]]:
    if not isinstance(data, dict) or "inputs" not in data:
        raise ValidationError(f"the request body must be a JSON object with an 'inputs' field for {task}, e.g. {shape}")
    parameters = data.get("parameters")
    if parameters is None:
        parameters = {}
    if not isinstance(parameters, dict):
        raise ValidationError("'parameters' must be a JSON object, e.g. {\"probabilities\": true}")
    return data["inputs"], parameters


def _native(values: Any) -> list[Any]:
    """numpy values as plain Python ones (ints, floats, strs), so the answer is JSON-able."""
    items: list[Any] = values.tolist() if hasattr(values, "tolist") else list(values)
    return [item.item() if hasattr(item, "item") else item for item in items]


@dataclass
class TabularPredictor:
    """Rows in ``{"inputs": {"data": {column: [values]}}}`` -> one prediction per row, all rows in one call."""

    estimator: Any
    task: str
    columns: list[str] | None  # None: the request's own columns, in the order sent
    as_frame: bool  # fitted on a DataFrame: send one, so its column-name check holds

    def __call__(self, data: Any) -> list[Any]:
        inputs, parameters = _body(data, self.task, _TABULAR_SHAPE)
        probabilities = self._probabilities(parameters)
        table = self._table(inputs)
        rows = len(next(iter(table.values()))) if table else 0
        if rows == 0:
            return []
        features = self._features(table)
        try:
            predictions = _native(self.estimator.predict(features))
            if not probabilities:
                return predictions
            scores = self.estimator.predict_proba(features).tolist()
        except (ValueError, TypeError) as exc:
            raise ValidationError(f"the model could not use these inputs: {exc}") from exc
        classes = [str(label) for label in _native(self.estimator.classes_)]
        return [
            {"prediction": label, "probabilities": dict(zip(classes, row, strict=True))}
            for label, row in zip(predictions, scores, strict=True)
        ]

    def _probabilities(self, parameters: dict[str, Any]) -> bool:
        unknown = sorted(set(parameters) - set(PARAMETERS))
        if unknown:
            raise ValidationError(
                f"unknown parameter{'s' if len(unknown) > 1 else ''} {', '.join(map(repr, unknown))} for {self.task}; "
                f"supported parameters: {', '.join(PARAMETERS)}"
            )
        wanted = parameters.get("probabilities")
        if wanted is None:
            return False
        if not isinstance(wanted, bool):
            raise ValidationError(f"parameter 'probabilities' must be true or false, got {wanted!r}")
        if wanted and not callable(getattr(self.estimator, "predict_proba", None)):
            raise ValidationError(
                f"this model ({type(self.estimator).__name__}) has no predict_proba, so it cannot answer probabilities: "
                "drop the parameter"
            )
        return wanted

    def _table(self, inputs: Any) -> dict[str, list[Any]]:
        """The request's columns in the model's order, checked: names, and one length for all."""
        if isinstance(inputs, list) and self.columns is not None:
            return self._rows(inputs, self.columns)
        table = inputs.get("data") if isinstance(inputs, dict) else None
        if not isinstance(table, dict) or not table:
            raise ValidationError(
                f"'inputs' must be an object with a 'data' object of columns for {self.task}, e.g. {_TABULAR_SHAPE}"
            )
        expected = self.columns if self.columns is not None else list(table)
        missing = [name for name in expected if name not in table]
        extra = [name for name in table if name not in expected]
        if missing or extra:
            problems = []
            if missing:
                problems.append(f"missing column{'s' if len(missing) > 1 else ''} {', '.join(map(repr, missing))}")
            if extra:
                problems.append(f"unknown column{'s' if len(extra) > 1 else ''} {', '.join(map(repr, extra))}")
            raise ValidationError(f"{' and '.join(problems)}; the model takes the columns {', '.join(expected)}")
        bad = [name for name in expected if not isinstance(table[name], list)]
        if bad:
            raise ValidationError(f"column {bad[0]!r} must be a list of values, one per row, e.g. {_TABULAR_SHAPE}")
        lengths = {name: len(table[name]) for name in expected}
        if len(set(lengths.values())) > 1:
            described = ", ".join(f"{name}: {length}" for name, length in lengths.items())
            raise ValidationError(f"columns must hold one value per row, the same number each; got {described}")
        return {name: table[name] for name in expected}

    def _rows(self, inputs: list[Any], columns: list[str]) -> dict[str, list[Any]]:
        """Rows as lists in the config's column order: one row (``[v1, v2, ...]``) or several (``[[...], [...]]``),
        what a batch transform's CSV lines become; numeric strings (CSV's fields) are read as numbers."""
        rows = inputs if inputs and all(isinstance(row, list) for row in inputs) else [inputs]
        for number, row in enumerate(rows, start=1):
            if len(row) != len(columns):
                raise ValidationError(
                    f"row {number} has {len(row)} value{'s' if len(row) != 1 else ''}; the model takes {len(columns)} "
                    f"per row, in the order {', '.join(columns)} (or send {_TABULAR_SHAPE})"
                )
        return {
            name: [_csv_value(value) if isinstance(value, str) else value for value in column]
            for name, column in zip(columns, zip(*rows, strict=True), strict=True)
        }

    def _features(self, table: dict[str, list[Any]]) -> Any:
        """A DataFrame for an estimator fitted on one, else a 2-D array (float where every value is a number)."""
        if self.as_frame:
            import pandas as pd

            return pd.DataFrame(table, columns=list(table))
        import numpy as np

        columns = list(table.values())
        try:
            return np.asarray(columns, dtype=float).T
        except (ValueError, TypeError):
            pass
        columns = [[math.nan if value is None else value for value in column] for column in columns]  # JSON null
        try:
            return np.asarray(columns, dtype=float).T
        except (ValueError, TypeError):
            return np.asarray(columns, dtype=object).T


@dataclass
class TextPipeline:
    """A scikit-learn text pipeline answering as transformers' text-classification: ``[{"label", "score"}]``."""

    estimator: Any
    task: str = TEXT_TASK

    def __call__(self, data: Any) -> list[dict[str, Any]]:
        inputs, parameters = _body(data, self.task, _TEXT_SHAPE)
        if parameters:
            raise ValidationError(
                f"unknown parameter{'s' if len(parameters) > 1 else ''} {', '.join(map(repr, sorted(parameters)))} "
                f"for a scikit-learn {self.task} model; it takes no parameters"
            )
        if isinstance(inputs, str):
            texts = [inputs]
        elif isinstance(inputs, list) and inputs and all(isinstance(item, str) for item in inputs):
            texts = list(inputs)
        else:
            raise ValidationError(
                f"'inputs' must be a string or a non-empty list of strings for {self.task}, e.g. {_TEXT_SHAPE}"
            )
        try:
            if not callable(getattr(self.estimator, "predict_proba", None)):
                return [{"label": str(label)} for label in _native(self.estimator.predict(texts))]
            scores = self.estimator.predict_proba(texts)
        except (ValueError, TypeError) as exc:
            raise ValidationError(f"the model could not use these inputs: {exc}") from exc
        classes = [str(label) for label in _native(self.estimator.classes_)]
        best = scores.argmax(axis=1).tolist()
        return [{"label": classes[i], "score": float(row[i])} for i, row in zip(best, scores, strict=True)]


# -- SageMaker's text/csv ------------------------------------------------------------------------


def rows_from_csv(body: bytes, columns: Sequence[str]) -> dict[str, Any]:
    """``text/csv`` rows, as SageMaker's scikit-learn container takes them, as a tabular body.

    Rows have no header and hold the values in ``columns``' order; numbers become floats and other
    fields stay strings (an empty field is a missing value). A first row that is exactly the column
    names is taken as a header and skipped.
    """
    try:
        text = body.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise ValidationError(f"the text/csv body is not UTF-8 ({exc})") from exc
    rows = [row for row in csv.reader(io.StringIO(text)) if any(field.strip() for field in row)]
    if rows and [field.strip() for field in rows[0]] == list(columns):
        rows = rows[1:]
    if not rows:
        raise ValidationError(
            f"the text/csv body holds no rows; send one line per row with {len(columns)} values in the order "
            f"{', '.join(columns)}, no header"
        )
    data: dict[str, list[Any]] = {name: [] for name in columns}
    for number, row in enumerate(rows, start=1):
        if len(row) != len(columns):
            raise ValidationError(
                f"text/csv row {number} has {len(row)} field{'s' if len(row) != 1 else ''}; the model takes "
                f"{len(columns)} per row, in the order {', '.join(columns)}"
            )
        for name, field in zip(columns, row, strict=True):
            data[name].append(_csv_value(field))
    return {"inputs": {"data": data}}


def _csv_value(field: str) -> Any:
    value = field.strip()
    if not value:
        return None
    try:
        return float(value)
    except ValueError:
        return field
