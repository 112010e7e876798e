"""load_model: custom code on and off, safe weights only, dtype and device."""

from __future__ import annotations

import json
import shutil
import textwrap
from pathlib import Path

import pytest
import torch

from hubserve.errors import ValidationError
from hubserve.models.loading import load_model
from hubserve.models.weights import PickleWeightsRefused


def test_handler_runs_only_with_custom_code(tiny_models: dict[str, Path]) -> None:
    folder = tiny_models["custom-handler"]
    custom = load_model(folder, "text-classification", custom_code=True)
    standard = load_model(folder, "text-classification")

    answer = custom.predict({"inputs": "I love this"})
    assert answer["handled_by"] == "handler.py"
    assert answer["result"] == standard.predict({"inputs": "I love this"})  # the same real model
    assert custom.custom and not custom.accepts_raw

    assert not standard.custom
    assert standard.notes == ["handler.py ignored: set custom_code: true to run it"]


def test_inference_script_with_input_and_output_fn(tiny_models: dict[str, Path]) -> None:
    folder = tiny_models["custom-inference"]
    model = load_model(folder, "text-classification", custom_code=True)
    assert model.accepts_raw and model.custom
    assert "input_fn, output_fn" in model.notes[0]

    body, content_type = model.handle_raw(b"I love this", "text/plain", "application/json")
    answer = json.loads(body)
    assert content_type == "application/json" and answer["handled_by"] == "inference.py"
    assert answer["result"][0]["label"] in ("NEGATIVE", "POSITIVE")

    body, _ = model.handle_raw(b'{"inputs": "I love this"}', "application/json", "*/*")
    assert json.loads(body)["result"] == answer["result"]
    # predict_fn is the default: the standard predictor with its checks
    with pytest.raises(ValidationError):
        model.handle_raw(b'{"text": "no inputs"}', "application/json", "application/json")

    off = load_model(folder, "text-classification")
    assert not off.accepts_raw
    assert off.notes == ["code/inference.py ignored: set custom_code: true to run it"]


def test_inference_script_model_fn_and_predict_fn(tmp_path: Path) -> None:
    (tmp_path / "code").mkdir()
    (tmp_path / "code" / "helper.py").write_text("GREETING = 'hello'\n")
    (tmp_path / "code" / "inference.py").write_text(
        textwrap.dedent(
            """
            from helper import GREETING  # siblings in code/ are importable, as on SageMaker

            def model_fn(model_dir):
                return {"dir": model_dir}

            def predict_fn(data, model):
                return {"greeting": GREETING, "echo": data["inputs"], "dir": model["dir"]}
            """
        )
    )
    model = load_model(tmp_path, "text-classification", custom_code=True)  # no weights needed
    assert not model.accepts_raw
    assert model.predict({"inputs": "x"}) == {"greeting": "hello", "echo": "x", "dir": str(tmp_path)}


def test_two_handlers_do_not_collide(tmp_path: Path) -> None:
    answers = []
    for name in ("a", "b"):
        folder = tmp_path / name
        folder.mkdir()
        (folder / "handler.py").write_text(
            f"class EndpointHandler:\n    def __init__(self, path):\n        pass\n"
            f"    def __call__(self, data):\n        return {name!r}\n"
        )
        answers.append(load_model(folder, "text-classification", custom_code=True))
    assert [model.predict({"inputs": ""}) for model in answers] == ["a", "b"]


def test_handle_raw_without_custom_code_speaks_json(tiny_models: dict[str, Path]) -> None:
    model = load_model(tiny_models["text-classification"], "text-classification")
    body, content_type = model.handle_raw(b'{"inputs": "good"}', "application/json", "application/json")
    assert content_type == "application/json" and json.loads(body)[0]["label"] in ("NEGATIVE", "POSITIVE")
    with pytest.raises(ValidationError, match="send application/json"):
        model.handle_raw(b"a,b", "text/csv", "application/json")


def test_pickle_only_weights_are_refused(tiny_models: dict[str, Path], tmp_path: Path) -> None:
    from safetensors.torch import load_file

    folder = tmp_path / "pickled"
    shutil.copytree(tiny_models["text-classification"], folder)
    torch.save(load_file(folder / "model.safetensors"), folder / "pytorch_model.bin")
    (folder / "model.safetensors").unlink()
    with pytest.raises(PickleWeightsRefused, match=r"pytorch_model.bin.*safetensors only"):
        load_model(folder, "text-classification")


def test_remote_code_is_never_trusted(tiny_models: dict[str, Path], tmp_path: Path) -> None:
    folder = tmp_path / "remote"
    shutil.copytree(tiny_models["text-classification"], folder)
    marker = tmp_path / "executed"
    (folder / "modeling_evil.py").write_text(f"open({str(marker)!r}, 'w').write('ran')\n")
    config = json.loads((folder / "config.json").read_text())
    config.update(model_type="evil", auto_map={"AutoModelForSequenceClassification": "modeling_evil.Evil"})
    (folder / "config.json").write_text(json.dumps(config))
    with pytest.raises(ValueError, match=r"needs its own modelling code.*never runs"):
        load_model(folder, "text-classification")
    assert not marker.exists()


def test_dtype(tiny_models: dict[str, Path]) -> None:
    model = load_model(tiny_models["question-answering"], "question-answering", dtype="bfloat16")
    assert model.predictor.model.dtype == torch.bfloat16  # type: ignore[attr-defined]
    answer = model.predict({"inputs": {"question": "Who?", "context": "Bob is here."}})
    assert type(answer["score"]) is float
    with pytest.raises(ValueError, match="unknown dtype 'int4'"):
        load_model(tiny_models["question-answering"], "question-answering", dtype="int4")


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the error on a machine without a GPU")
def test_cuda_without_gpu_fails_at_load(tiny_models: dict[str, Path]) -> None:
    with pytest.raises(RuntimeError, match="no CUDA GPU"):
        load_model(tiny_models["text-classification"], "text-classification", device="cuda")


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs an NVIDIA GPU")
@pytest.mark.parametrize(
    ("key", "task", "body"),
    [
        ("text-classification", "text-classification", {"inputs": "good"}),
        ("question-answering", "question-answering", {"inputs": {"question": "Who?", "context": "Bob is here."}}),
        ("sentence-transformers", "sentence-similarity", {"inputs": {"source_sentence": "a", "sentences": ["b"]}}),
        ("text2text-generation", "summarization", {"inputs": "some text", "parameters": {"max_new_tokens": 3}}),
        ("text-generation", "text-generation", {"inputs": "Hi", "parameters": {"max_new_tokens": 3}}),
    ],
)
def test_cuda_float16(tiny_models: dict[str, Path], key: str, task: str, body: dict) -> None:
    model = load_model(tiny_models[key], task, dtype="float16", device="cuda")
    result = model.predict(body)
    assert json.loads(json.dumps(result)) == result
