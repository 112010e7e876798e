"""Model folders for multi-model endpoints: text classifiers of chosen sizes, each with its own labels."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import tiny_models as builders
import torch
from transformers import BertConfig, BertForSequenceClassification


def build_classifier(dst: Path, labels: tuple[str, str], hidden: int = 32, seed: int = 0) -> Path:
    """A BERT classifier whose labels name it (so an answer says which model gave it); ``hidden`` sets its size:
    32 is about 4 MB of weights, 256 about 45 MB, 512 about 100 MB."""
    torch.manual_seed(seed)
    config = BertConfig(
        vocab_size=builders.VOCAB_SIZE, hidden_size=hidden, num_hidden_layers=2, num_attention_heads=2,
        intermediate_size=hidden * 2, max_position_embeddings=512, pad_token_id=builders.PAD_ID,
        id2label=dict(enumerate(labels)), label2id={name: i for i, name in enumerate(labels)},
    )  # fmt: skip
    dst.mkdir(parents=True, exist_ok=True)
    BertForSequenceClassification(config).save_pretrained(str(dst), safe_serialization=True)
    builders.tokenizer().save_pretrained(str(dst))
    return dst


def relabel(src: Path, dst: Path, labels: tuple[str, str]) -> Path:
    """A copy of ``src`` whose labels are ``labels``: the same weights, another model to the endpoint."""
    shutil.copytree(src, dst)
    config = json.loads((dst / "config.json").read_text())
    config["id2label"] = dict(enumerate(labels))
    config["label2id"] = {name: i for i, name in enumerate(labels)}
    (dst / "config.json").write_text(json.dumps(config))
    return dst


@pytest.fixture(scope="session")
def sized_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One classifier of about 45 MB of weights, built once and copied under other labels."""
    return build_classifier(tmp_path_factory.mktemp("mm-sized") / "base", ("a-neg", "a-pos"), hidden=256)
