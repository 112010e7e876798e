"""A checkpoint without weights for the task's head fails to load, naming them and the tasks it does serve.

transformers initialises such weights at random and only warns; an endpoint would then answer
from noise. These load real tiny folders (tests/tiny_models.py) with the real loader.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from hubserve.models import onnx_export
from hubserve.models.loading import load_model
from hubserve.models.progress import Progress
from hubserve.models.task_inference import head_tasks
from hubserve.models.weights import MissingWeights, WeightsCheck

# every tiny model, deployed as the task it was saved for (its head's class), still loads
OWN_TASKS = [
    ("text-classification", "text-classification"),
    ("token-classification", "token-classification"),
    ("question-answering", "question-answering"),
    ("fill-mask", "fill-mask"),
    ("feature-extraction", "feature-extraction"),
    ("zero-shot-classification", "zero-shot-classification"),
    ("sentence-transformers", "sentence-similarity"),
    ("sentence-transformers", "feature-extraction"),
    ("text2text-generation", "summarization"),
    ("text-generation", "text-generation"),
]


@pytest.mark.parametrize(("key", "task"), OWN_TASKS)
def test_models_saved_for_their_task_load(tiny_models: dict[str, Path], key: str, task: str) -> None:
    assert load_model(tiny_models[key], task).task == task


def test_a_bare_encoder_as_question_answering_names_the_missing_head(tiny_models: dict[str, Path]) -> None:
    folder = tiny_models["sentence-transformers"]
    with pytest.raises(MissingWeights) as caught:
        load_model(folder, "question-answering")
    message = str(caught.value)
    assert "qa_outputs.bias, qa_outputs.weight are missing" in message
    assert "feature-extraction" in message and "sentence-similarity" in message and "sentence-embeddings" in message
    assert "model.allow_missing_weights: true" in message
    assert caught.value.phase == "weights"


def test_a_classifier_as_fill_mask_names_its_own_task(tiny_models: dict[str, Path]) -> None:
    with pytest.raises(MissingWeights, match=r"cls\.predictions\.") as caught:
        load_model(tiny_models["text-classification"], "fill-mask")
    assert "have a head for: text-classification" in str(caught.value)


def test_allowed_missing_weights_load_and_are_reported(
    tiny_models: dict[str, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    loaded = load_model(tiny_models["feature-extraction"], "question-answering", allow_missing_weights=True)
    assert loaded.task == "question-answering"
    assert "qa_outputs.bias, qa_outputs.weight not in the checkpoint; initialised at random" in capsys.readouterr().out


def test_a_missing_pooler_does_not_matter_to_feature_extraction(tmp_path: Path) -> None:
    check = WeightsCheck("feature-extraction")
    check(tmp_path, ["pooler.dense.weight", "pooler.dense.bias"])  # the pipeline reads hidden states
    with pytest.raises(MissingWeights, match=r"bert\.pooler\.dense\.weight"):
        WeightsCheck("text-classification")(tmp_path, ["bert.pooler.dense.weight", "classifier.weight"])


def test_many_missing_keys_are_cut_short(tmp_path: Path) -> None:
    keys = [f"encoder.layer.{i}.weight" for i in range(20)]
    with pytest.raises(MissingWeights, match="and 12 more are missing"):
        WeightsCheck("text-classification")(tmp_path, keys)


def test_head_tasks_from_the_folder(tiny_models: dict[str, Path], tmp_path: Path) -> None:
    assert head_tasks(tiny_models["feature-extraction"]) == ["feature-extraction", "sentence-embeddings", "sentence-similarity"]
    assert head_tasks(tiny_models["sentence-transformers"])[:2] == ["sentence-embeddings", "sentence-similarity"]
    assert head_tasks(tiny_models["text-classification"]) == ["text-classification"]
    assert head_tasks(tiny_models["zero-shot-classification"]) == ["text-classification", "zero-shot-classification"]
    assert head_tasks(tiny_models["question-answering"]) == ["question-answering"]
    assert head_tasks(tiny_models["text2text-generation"]) == ["summarization", "translation", "text2text-generation"]
    assert head_tasks(tmp_path) == []  # no config.json: nothing known


def test_the_onnx_runtime_refuses_too_and_reads_the_cached_export(
    tiny_models: dict[str, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An export records what it loaded; a replica serving the cached export checks it without torch."""
    monkeypatch.setattr(onnx_export, "ISOLATED", False)  # export here: quicker, and the same code
    folder = shutil.copytree(tiny_models["feature-extraction"], tmp_path / "encoder")
    cache = tmp_path / "runtimes"
    steps: list[str] = []
    loaded = load_model(
        folder, "text-classification", runtime="onnx", cache_dir=cache, allow_missing_weights=True,
        progress=Progress(steps.append),
    )  # fmt: skip
    assert loaded.runtime_info["chosen"] == "onnx" and loaded.runtime_info["cache"] == "miss"
    assert steps == [
        "exporting to ONNX (step 1 of 4)", "optimizing the ONNX graph (step 2 of 4)",
        "quantizing to int8 (step 3 of 4)", "loading the model (step 4 of 4)",
    ]  # fmt: skip
    meta_path = onnx_export.key_dir(folder, "AutoModelForSequenceClassification", cache) / "onnx" / "meta.json"
    assert json.loads(meta_path.read_text())["missing_keys"] == ["classifier.bias", "classifier.weight"]

    steps.clear()
    with pytest.raises(MissingWeights, match=r"classifier\.bias, classifier\.weight are missing"):
        load_model(folder, "text-classification", runtime="onnx", cache_dir=cache, progress=Progress(steps.append))
    assert steps == []  # refused from the export's meta, before opening it


def test_progress_numbers_the_steps_it_knows() -> None:
    heard: list[str] = []
    progress = Progress(heard.append)
    progress.plan("loading the model")
    progress.plan("exporting to ONNX", "quantizing to int8", first=True)
    progress.begin("exporting to ONNX")
    progress.begin("quantizing to int8")
    progress.begin("exporting to ONNX")  # begun already: not again
    progress.begin("loading the model")
    assert heard == [
        "exporting to ONNX (step 1 of 3)", "quantizing to int8 (step 2 of 3)", "loading the model (step 3 of 3)",
    ]  # fmt: skip
    alone: list[str] = []
    Progress(alone.append).begin("loading the model")
    assert alone == ["loading the model"]
