"""Task inference from a model folder's files, and finding custom code."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from hubserve.models import find_custom_code, infer_task


@pytest.mark.parametrize(
    ("key", "task"),
    [
        ("text-classification", "text-classification"),
        ("token-classification", "token-classification"),
        ("question-answering", "question-answering"),
        ("fill-mask", "fill-mask"),
        ("feature-extraction", "feature-extraction"),
        ("zero-shot-classification", "text-classification"),  # NLI heads are not assumed zero-shot
        ("sentence-transformers", "sentence-embeddings"),
        ("text2text-generation", "text2text-generation"),
        ("text-generation", "text-generation"),
        ("custom-handler", "text-classification"),
    ],
)
def test_tiny_models(tiny_models: dict[str, Path], key: str, task: str) -> None:
    assert infer_task(tiny_models[key]) == task


def _folder(tmp_path: Path, config: dict[str, object]) -> Path:
    (tmp_path / "config.json").write_text(json.dumps(config))
    return tmp_path


@pytest.mark.parametrize(
    ("config", "task"),
    [
        ({"architectures": ["GPT2LMHeadModel"], "model_type": "gpt2"}, "text-generation"),
        ({"architectures": ["LlamaForCausalLM"]}, "text-generation"),
        ({"architectures": ["T5WithLMHeadModel"], "model_type": "t5"}, "text2text-generation"),
        (
            {
                "architectures": ["T5ForConditionalGeneration"],
                "is_encoder_decoder": True,
                "task_specific_params": {"summarization": {}, "translation_en_to_de": {}},
            },
            "text2text-generation",
        ),
        (
            {
                "architectures": ["BartForConditionalGeneration"],
                "model_type": "bart",
                "task_specific_params": {"summarization": {"num_beams": 4}},
            },
            "summarization",
        ),
        (
            {"architectures": ["FSMTForConditionalGeneration"], "model_type": "fsmt",
             "task_specific_params": {"translation_en_to_de": {}}},
            "translation",
        ),
        ({"architectures": ["MarianMTModel"], "model_type": "marian"}, "translation"),
        ({"architectures": ["DistilBertModel"]}, "feature-extraction"),
        ({"architectures": ["RobertaForMaskedLM"]}, "fill-mask"),
    ],
)
def test_architecture_suffixes(tmp_path: Path, config: dict[str, object], task: str) -> None:
    assert infer_task(_folder(tmp_path, config)) == task


@pytest.mark.parametrize(
    "config",
    [
        {},
        {"architectures": []},
        {"architectures": ["LlavaForConditionalGeneration"], "model_type": "llava"},  # not encoder-decoder
        {"architectures": ["BertForPreTraining"]},
    ],
)
def test_unknown_architecture_says_set_model_task(tmp_path: Path, config: dict[str, object]) -> None:
    with pytest.raises(ValueError, match=r"could not infer the task.*Set model.task"):
        infer_task(_folder(tmp_path, config))


def test_missing_or_broken_config(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match=r"no config.json"):
        infer_task(tmp_path)
    (tmp_path / "config.json").write_text("{not json")
    with pytest.raises(ValueError, match="unreadable"):
        infer_task(tmp_path)


def test_find_custom_code(tiny_models: dict[str, Path]) -> None:
    assert find_custom_code(tiny_models["text-classification"]) == []
    assert find_custom_code(tiny_models["custom-handler"]) == ["handler.py"]
    assert find_custom_code(tiny_models["custom-inference"]) == ["code/inference.py"]
