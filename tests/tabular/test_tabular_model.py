"""hubserve.models.tabular: Hub-layout scikit-learn folders loaded safely and served many rows per call."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
import tabular_models as builders

from hubserve.errors import ValidationError
from hubserve.models import tabular


@pytest.fixture(scope="module")
def folders(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("tabular-models")
    return {
        "logistic": builders.build_scaled_logistic(root / "logistic"),
        "forest": builders.build_random_forest(root / "forest"),
        "forest-regression": builders.build_random_forest(root / "forest-regression", regression=True),
        "text": builders.build_text_pipeline(root / "text"),
        "pickled": builders.build_pickled(root / "pickled"),
        "untrusted": builders.build_untrusted(root / "untrusted"),
        "boosting": builders.build_gradient_boosting(root / "boosting", columns=30),
    }


def _body(frame: pd.DataFrame, **parameters: Any) -> dict[str, Any]:
    body: dict[str, Any] = {"inputs": {"data": {name: frame[name].tolist() for name in frame.columns}}}
    if parameters:
        body["parameters"] = parameters
    return body


TREE = ["sklearn.tree._tree.Tree"]  # forests and boosting hold trees, which skops 0.16 does not trust by default


def _load(folder: Path, task: str = "tabular-classification", **options: Any) -> Any:
    predictor, _ = tabular.load_tabular(folder, task, **options)
    return predictor


def _rewrite_section(folder: Path, **changes: Any) -> None:
    config = json.loads((folder / "config.json").read_text())
    config["sklearn"].update(changes)
    (folder / "config.json").write_text(json.dumps(config))


# -- inference ---------------------------------------------------------------------------------------


def test_scaled_logistic_answers_as_the_estimator(folders: dict[str, Path]) -> None:
    model, frame = builders.make_scaled_logistic()
    answer = _load(folders["logistic"])(_body(frame))
    assert answer == model.predict(frame).tolist()
    assert all(type(label) is str for label in answer)
    json.dumps(answer)


def test_columns_sent_in_another_order_are_reordered(folders: dict[str, Path]) -> None:
    model, frame = builders.make_scaled_logistic()
    shuffled = frame[list(reversed(frame.columns))]
    assert _load(folders["logistic"])(_body(shuffled)) == model.predict(frame).tolist()


@pytest.mark.parametrize("regression", [False, True])
def test_random_forest_answers_as_the_estimator(folders: dict[str, Path], regression: bool) -> None:
    model, frame = builders.make_random_forest(regression)
    folder = folders["forest-regression" if regression else "forest"]
    task = "tabular-regression" if regression else "tabular-classification"
    answer = _load(folder, task, trusted_types=TREE)(_body(frame))
    assert answer == pytest.approx(model.predict(frame.to_numpy()).tolist())
    assert all(type(value) is (float if regression else int) for value in answer)


def test_gradient_boosting_answers_as_the_estimator(folders: dict[str, Path]) -> None:
    model, frame = builders.make_gradient_boosting(30)
    assert tabular.columns_of(folders["boosting"]) == [f"x{i}" for i in range(30)]
    assert _load(folders["boosting"], trusted_types=TREE)(_body(frame)) == model.predict(frame.to_numpy()).tolist()


def test_many_rows_are_one_predict_call(folders: dict[str, Path]) -> None:
    predictor = _load(folders["forest"], trusted_types=TREE)
    calls: list[int] = []

    class Spy:
        def __init__(self, inner: Any) -> None:
            self.inner = inner

        def __getattr__(self, name: str) -> Any:
            return getattr(self.inner, name)

        def predict(self, features: Any) -> Any:
            calls.append(len(features))
            return self.inner.predict(features)

    predictor.estimator = Spy(predictor.estimator)
    _, frame = builders.make_random_forest()
    assert len(predictor(_body(frame))) == len(frame)
    assert calls == [len(frame)]


def test_probabilities_parameter(folders: dict[str, Path]) -> None:
    model, frame = builders.make_scaled_logistic()
    answer = _load(folders["logistic"])(_body(frame.head(5), probabilities=True))
    expected = model.predict_proba(frame.head(5))
    assert [row["prediction"] for row in answer] == model.predict(frame.head(5)).tolist()
    for row, scores in zip(answer, expected, strict=True):
        assert list(row["probabilities"]) == ["large", "medium", "small"]
        assert list(row["probabilities"].values()) == pytest.approx(scores.tolist())
    json.dumps(answer)


def test_probabilities_on_a_regressor_is_a_400(folders: dict[str, Path]) -> None:
    _, frame = builders.make_random_forest(regression=True)
    with pytest.raises(ValidationError, match="predict_proba") as caught:
        _load(folders["forest-regression"], "tabular-regression", trusted_types=TREE)(_body(frame, probabilities=True))
    assert caught.value.status == 400


def test_unknown_parameters_are_named(folders: dict[str, Path]) -> None:
    _, frame = builders.make_scaled_logistic()
    with pytest.raises(ValidationError, match=r"'top_k'.*probabilities"):
        _load(folders["logistic"])(_body(frame, top_k=2))


def test_text_pipeline_one_string_and_a_list(folders: dict[str, Path]) -> None:
    model, _ = builders.make_text_pipeline()
    predictor, notes = tabular.load_tabular(folders["text"], "text-classification")
    assert notes == []
    one = predictor({"inputs": "I love this wonderful movie"})
    assert len(one) == 1 and one[0]["label"] == "positive" and 0.5 < one[0]["score"] <= 1
    texts = ["I love this wonderful movie", "a terrible and boring film", "great story"]
    many = predictor({"inputs": texts})
    assert [item["label"] for item in many] == model.predict(texts).tolist()
    assert [item["score"] for item in many] == pytest.approx(model.predict_proba(texts).max(axis=1).tolist())
    assert all(type(item["score"]) is float for item in many)
    for bad in ([], [1, 2], {"text": "x"}):
        with pytest.raises(ValidationError, match="string"):
            predictor({"inputs": bad})


def test_json_null_is_a_missing_value(folders: dict[str, Path]) -> None:
    model, frame = builders.make_untrusted()  # nan_to_num turns the missing value into 0
    rows = frame.head(2).copy()
    body = _body(rows)
    body["inputs"]["data"]["x1"][0] = None
    rows.iloc[0, 1] = 0.0
    predictor = _load(folders["untrusted"], trusted_types=["numpy.nan_to_num"])
    assert predictor(body) == model.predict(rows.to_numpy()).tolist()


def test_a_text_model_cannot_serve_a_tabular_task(folders: dict[str, Path]) -> None:
    with pytest.raises(tabular.TabularModelError, match="serves text-classification"):
        tabular.load_tabular(folders["text"], "tabular-classification")


# -- bad bodies --------------------------------------------------------------------------------------


def test_missing_column_names_it_and_lists_the_expected(folders: dict[str, Path]) -> None:
    _, frame = builders.make_scaled_logistic()
    with pytest.raises(ValidationError) as caught:
        _load(folders["logistic"])(_body(frame.drop(columns=["depth"])))
    assert caught.value.status == 400
    assert "missing column 'depth'" in caught.value.message
    assert "length, width, depth, weight" in caught.value.message


def test_rows_as_lists_in_column_order_answer_as_columns_do(folders: dict[str, Path]) -> None:
    # What a batch transform's headerless CSV lines become: strings, in the config's column order.
    _, frame = builders.make_scaled_logistic()
    head = frame.head(3)
    predict = _load(folders["logistic"])
    as_rows = [[str(value) for value in row] for row in head.itertuples(index=False)]
    assert predict({"inputs": as_rows}) == predict(_body(head))
    assert predict({"inputs": as_rows[0]}) == predict(_body(head.head(1)))


def test_extra_column_names_it(folders: dict[str, Path]) -> None:
    _, frame = builders.make_scaled_logistic()
    with pytest.raises(ValidationError, match=r"unknown column 'colour'.*length, width, depth, weight"):
        _load(folders["logistic"])(_body(frame.assign(colour="red")))


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ([1, 2], "'inputs' field"),
        ({"inputs": "a string"}, "'data' object"),
        ({"inputs": [[1, 2, 3]]}, "row 1 has 3 values; the model takes 4 per row"),
        ({"inputs": {"data": {"length": [1], "width": [1], "depth": [1], "weight": 1}}}, "'weight' must be a list"),
        ({"inputs": {"data": {"length": [1, 2], "width": [1], "depth": [1], "weight": [1]}}}, "length: 2, width: 1"),
        ({"inputs": {"data": {"length": [1]}}, "parameters": [1]}, "'parameters' must be a JSON object"),
    ],
)
def test_bad_shapes_are_400s_that_say_the_shape(folders: dict[str, Path], body: Any, message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        _load(folders["logistic"])(body)


# -- safe loading ------------------------------------------------------------------------------------


def test_untrusted_types_are_refused_with_the_fix(folders: dict[str, Path]) -> None:
    with pytest.raises(tabular.TabularModelError) as caught:
        tabular.load_tabular(folders["untrusted"], "tabular-classification")
    message = str(caught.value)
    assert "numpy.nan_to_num" in message
    assert 'model.trusted_types: ["numpy.nan_to_num"]' in message


def test_tree_models_need_their_tree_type_trusted(folders: dict[str, Path]) -> None:
    with pytest.raises(tabular.TabularModelError, match=r'model.trusted_types: \["sklearn.tree._tree.Tree"\]'):
        tabular.load_tabular(folders["forest"], "tabular-classification")


def test_trusted_types_let_it_load(folders: dict[str, Path]) -> None:
    model, frame = builders.make_untrusted()
    predictor = _load(folders["untrusted"], trusted_types=["numpy.nan_to_num"])
    assert predictor(_body(frame)) == model.predict(frame.to_numpy()).tolist()


def test_pickle_is_refused_by_default(folders: dict[str, Path]) -> None:
    assert tabular.pickled_file(folders["pickled"]) == "model.pkl"
    assert tabular.pickled_file(folders["logistic"]) is None
    with pytest.raises(tabular.TabularModelError, match=r"model\.pkl is a pickle file.*allow_pickle: true"):
        tabular.load_tabular(folders["pickled"], "tabular-classification")


def test_pickle_loads_with_allow_pickle(folders: dict[str, Path]) -> None:
    model, frame = builders.make_scaled_logistic()
    predictor, notes = tabular.load_tabular(folders["pickled"], "tabular-classification", allow_pickle=True)
    assert any(note.startswith("model.pkl loaded with pickle (allow_pickle: true)") for note in notes)
    assert predictor(_body(frame)) == model.predict(frame).tolist()


@pytest.mark.parametrize(
    ("model", "message"),
    [
        ({"file": "../model.skops"}, "outside"),
        ({"file": "/etc/passwd"}, "outside"),
        ({"file": "absent.skops"}, "not in"),
        ({}, "names no model file"),
    ],
)
def test_bad_model_files_are_refused(tmp_path: Path, model: dict[str, Any], message: str) -> None:
    folder = builders.build_random_forest(tmp_path / "forest")
    _rewrite_section(folder, model=model)
    with pytest.raises(tabular.TabularModelError, match=message):
        tabular.load_tabular(folder, "tabular-classification")


def test_a_scikit_learn_version_mismatch_is_a_note(tmp_path: Path) -> None:
    folder = builders.build_random_forest(tmp_path / "forest")
    _rewrite_section(folder, environment=["scikit-learn=0.24.2"])
    _, notes = tabular.load_tabular(folder, "tabular-classification", trusted_types=TREE)
    assert any("scikit-learn 0.24.2" in note for note in notes)


# -- the config section and text/csv ------------------------------------------------------------------


def test_folder_questions(folders: dict[str, Path], tmp_path: Path) -> None:
    assert tabular.is_sklearn_folder(folders["logistic"])
    assert tabular.sklearn_task(folders["forest-regression"]) == "tabular-regression"
    assert tabular.sklearn_task(folders["text"]) == "text-classification"
    assert tabular.columns_of(folders["logistic"]) == builders.LOGISTIC_COLUMNS
    assert tabular.columns_of(folders["text"]) is None
    (tmp_path / "config.json").write_text(json.dumps({"architectures": ["BertModel"]}))
    assert not tabular.is_sklearn_folder(tmp_path)
    assert not tabular.is_sklearn_folder(tmp_path / "absent")
    with pytest.raises(tabular.TabularModelError, match="tabular-classification"):
        tabular.sklearn_task(tmp_path)


def test_columns_from_example_input_when_the_config_has_none(tmp_path: Path) -> None:
    folder = builders.build_random_forest(tmp_path / "forest")
    config = json.loads((folder / "config.json").read_text())
    del config["sklearn"]["columns"]
    config["sklearn"]["task"] = "tabular-clustering"
    (folder / "config.json").write_text(json.dumps(config))
    assert tabular.columns_of(folder) == [f"x{i}" for i in range(5)]
    with pytest.raises(tabular.TabularModelError, match="'tabular-clustering'"):
        tabular.sklearn_task(folder)


def test_rows_from_csv_feed_the_predictor(folders: dict[str, Path]) -> None:
    model, frame = builders.make_scaled_logistic()
    body = frame.head(4).to_csv(header=False, index=False).encode()
    parsed = tabular.rows_from_csv(body, builders.LOGISTIC_COLUMNS)
    assert parsed["inputs"]["data"]["width"] == pytest.approx(frame["width"].head(4).tolist())
    assert _load(folders["logistic"])(parsed) == model.predict(frame.head(4)).tolist()


def test_rows_from_csv_values_and_errors() -> None:
    assert tabular.rows_from_csv(b"1,red\n2.5, blue\n", ["n", "colour"]) == {
        "inputs": {"data": {"n": [1.0, 2.5], "colour": ["red", " blue"]}}
    }
    with pytest.raises(ValidationError, match=r"row 2 has 3 fields; the model takes 2 per row, in the order n, colour"):
        tabular.rows_from_csv(b"1,2\n3,4,5\n", ["n", "colour"])
    with pytest.raises(ValidationError, match="no rows"):
        tabular.rows_from_csv(b"\n \n", ["n", "colour"])


def test_importing_the_module_imports_no_torch() -> None:
    code = "import sys, hubserve.models.tabular; assert 'torch' not in sys.modules and 'sklearn' not in sys.modules"
    subprocess.run([sys.executable, "-c", code], check=True, timeout=60)
