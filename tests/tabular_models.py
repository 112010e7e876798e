"""Builders for small scikit-learn models in the Hugging Face Hub's layout (config.json's "sklearn" section).

Tests of ``hubserve.models.tabular`` need real model folders in each format and task it serves, built in
milliseconds without Hub downloads: synthetic data, fixed random states, so every build is the same. Each
``make_*`` returns the fitted estimator and its training inputs (for comparing answers in-process); each
``build_*`` writes a folder and returns its path.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import joblib
import numpy as np
import pandas as pd
import sklearn
import skops.io as sio
from sklearn.datasets import make_classification, make_regression
from sklearn.ensemble import GradientBoostingClassifier, RandomForestClassifier, RandomForestRegressor
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import FunctionTransformer, StandardScaler

LOGISTIC_COLUMNS = ["length", "width", "depth", "weight"]
LOGISTIC_CLASSES = np.array(["large", "medium", "small"])
POSITIVE = [
    "I love this movie",
    "what a wonderful day",
    "great acting and a great story",
    "this is excellent, I enjoyed it",
    "a delightful and happy film",
    "best meal I have had, wonderful",
]
NEGATIVE = [
    "I hate this movie",
    "what a terrible day",
    "awful acting and a boring story",
    "this is bad, I regret it",
    "a dull and sad film",
    "worst meal I have had, horrible",
]


def _columns(width: int) -> list[str]:
    return [f"x{i}" for i in range(width)]


def write_folder(
    folder: Path,
    estimator: Any,
    task: str,
    *,
    columns: list[str] | None,
    example_input: dict[str, Any],
    model_format: str = "skops",
) -> Path:
    """One Hub-layout folder: the model file plus config.json's sklearn section, as skops' hub_utils writes it."""
    folder.mkdir(parents=True, exist_ok=True)
    file = "model.skops" if model_format == "skops" else "model.pkl"
    if model_format == "skops":
        sio.dump(estimator, folder / file)
    else:
        joblib.dump(estimator, folder / file)
    section: dict[str, Any] = {
        "environment": [f"scikit-learn={sklearn.__version__}"],
        "example_input": example_input,
        "model": {"file": file},
        "model_format": model_format,
        "task": task,
    }
    if columns is not None:
        section["columns"] = columns
    (folder / "config.json").write_text(json.dumps({"sklearn": section}, indent=2))
    return folder


def _example(frame: pd.DataFrame) -> dict[str, list[Any]]:
    return {name: frame[name].head(3).tolist() for name in frame.columns}


# -- estimators -----------------------------------------------------------------------------------


def make_scaled_logistic() -> tuple[Pipeline, pd.DataFrame]:
    """StandardScaler + LogisticRegression on a 4-column DataFrame, 3 string classes."""
    x, y = make_classification(n_samples=150, n_features=4, n_informative=3, n_redundant=0, n_classes=3, random_state=0)
    frame = pd.DataFrame(x, columns=LOGISTIC_COLUMNS)
    model = Pipeline([("scale", StandardScaler()), ("classify", LogisticRegression(random_state=0))])
    model.fit(frame, LOGISTIC_CLASSES[y])
    return model, frame


def make_random_forest(regression: bool = False) -> tuple[Any, pd.DataFrame]:
    """A small random forest fitted on a numpy array (no feature names); the frame only names the columns."""
    if regression:
        x, y = make_regression(n_samples=120, n_features=5, noise=0.1, random_state=0)
        model: Any = RandomForestRegressor(n_estimators=10, max_depth=4, random_state=0)
    else:
        x, y = make_classification(n_samples=120, n_features=5, n_informative=3, n_redundant=0, random_state=0)
        model = RandomForestClassifier(n_estimators=10, max_depth=4, random_state=0)
    model.fit(x, y)
    return model, pd.DataFrame(x, columns=_columns(5))


def make_text_pipeline() -> tuple[Pipeline, list[str]]:
    """TfidfVectorizer + LogisticRegression with the labels "positive" and "negative"."""
    texts = POSITIVE + NEGATIVE
    labels = ["positive"] * len(POSITIVE) + ["negative"] * len(NEGATIVE)
    model = Pipeline([("tfidf", TfidfVectorizer()), ("classify", LogisticRegression(random_state=0))])
    model.fit(texts, labels)
    return model, texts


def make_untrusted() -> tuple[Pipeline, pd.DataFrame]:
    """A pipeline whose FunctionTransformer calls numpy.nan_to_num, a function skops does not trust by default."""
    x, y = make_classification(n_samples=100, n_features=3, n_informative=2, n_redundant=0, random_state=0)
    model = Pipeline([("clean", FunctionTransformer(np.nan_to_num)), ("classify", LogisticRegression(random_state=0))])
    model.fit(x, y)
    return model, pd.DataFrame(x, columns=_columns(3))


def make_gradient_boosting(columns: int = 30) -> tuple[GradientBoostingClassifier, pd.DataFrame]:
    """GradientBoostingClassifier on ``columns`` numeric columns, numpy-fitted: the benchmark's model."""
    x, y = make_classification(
        n_samples=400, n_features=columns, n_informative=min(columns, 10), n_redundant=0, random_state=0
    )
    model = GradientBoostingClassifier(n_estimators=50, max_depth=3, random_state=0)
    model.fit(x, y)
    return model, pd.DataFrame(x, columns=_columns(columns))


# -- folders --------------------------------------------------------------------------------------


def build_scaled_logistic(folder: Path) -> Path:
    model, frame = make_scaled_logistic()
    return write_folder(
        folder, model, "tabular-classification", columns=LOGISTIC_COLUMNS, example_input=_example(frame)
    )


def build_random_forest(folder: Path, regression: bool = False) -> Path:
    model, frame = make_random_forest(regression)
    task = "tabular-regression" if regression else "tabular-classification"
    return write_folder(folder, model, task, columns=list(frame.columns), example_input=_example(frame))


def build_text_pipeline(folder: Path) -> Path:
    model, texts = make_text_pipeline()
    # skops' hub_utils writes a text model's example as {"data": [...]} and no columns.
    return write_folder(folder, model, "text-classification", columns=None, example_input={"data": texts[:3]})


def build_pickled(folder: Path) -> Path:
    """The scaled logistic classifier saved with joblib (model.pkl, model_format "pickle")."""
    model, frame = make_scaled_logistic()
    return write_folder(
        folder,
        model,
        "tabular-classification",
        columns=LOGISTIC_COLUMNS,
        example_input=_example(frame),
        model_format="pickle",
    )


def build_untrusted(folder: Path) -> Path:
    model, frame = make_untrusted()
    folder = write_folder(
        folder, model, "tabular-classification", columns=list(frame.columns), example_input=_example(frame)
    )
    assert sio.get_untrusted_types(file=folder / "model.skops"), "the untrusted model needs a type skops does not trust"
    return folder


def build_gradient_boosting(folder: Path, columns: int = 30) -> Path:
    model, frame = make_gradient_boosting(columns)
    return write_folder(
        folder, model, "tabular-classification", columns=list(frame.columns), example_input=_example(frame)
    )
