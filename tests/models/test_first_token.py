"""The pruned last layer gives the unpruned model's logits on padded batches, for every adapted class."""

from __future__ import annotations

import pytest
import torch
import transformers

from hubserve.models.first_token import FirstTokenLayer, prune_last_layer, why_not_prunable

SMALL = {"hidden_size": 32, "num_hidden_layers": 2, "num_attention_heads": 4, "intermediate_size": 64,
         "vocab_size": 100, "max_position_embeddings": 64, "num_labels": 3}  # fmt: skip
CONFIGS = {
    "bert": lambda: transformers.BertConfig(**SMALL),
    "roberta": lambda: transformers.RobertaConfig(**SMALL, pad_token_id=1),
    "xlm-roberta": lambda: transformers.XLMRobertaConfig(**SMALL, pad_token_id=1),
    "electra": lambda: transformers.ElectraConfig(**SMALL, embedding_size=16),
    "distilbert": lambda: transformers.DistilBertConfig(dim=32, n_layers=2, n_heads=4, hidden_dim=64, vocab_size=100,
                                                        max_position_embeddings=64, num_labels=3),
}  # fmt: skip


def _classifier(kind: str, attention: str) -> torch.nn.Module:
    torch.manual_seed(0)
    config = CONFIGS[kind]()
    config._attn_implementation = attention
    return transformers.AutoModelForSequenceClassification.from_config(config).eval()


def _padded_batch() -> dict[str, torch.Tensor]:
    ids = torch.randint(3, 100, (3, 11))
    mask = torch.ones_like(ids)
    mask[1, 7:] = 0  # two padded rows of different lengths
    mask[2, 4:] = 0
    return {"input_ids": ids, "attention_mask": mask}


@pytest.mark.parametrize("attention", ["eager", "sdpa"])
@pytest.mark.parametrize("kind", sorted(CONFIGS))
def test_pruned_logits_equal_full_logits(kind: str, attention: str) -> None:
    model = _classifier(kind, attention)
    batch = _padded_batch()
    with torch.no_grad():
        expected = model(**batch).logits
        assert prune_last_layer(model) is None
        got = model(**batch)
    assert any(isinstance(module, FirstTokenLayer) for module in model.modules())
    torch.testing.assert_close(got.logits, expected, rtol=1e-5, atol=1e-5)
    # Padding rows must not leak into the first token's attention: row 2 alone gives the same logits.
    with torch.no_grad():
        alone = model(input_ids=batch["input_ids"][2:, :4]).logits
    torch.testing.assert_close(alone[0], expected[2], rtol=1e-5, atol=1e-5)


def test_pruning_twice_is_refused_with_a_reason() -> None:
    model = _classifier("bert", "eager")
    assert prune_last_layer(model) is None
    assert prune_last_layer(model) == "the last layer is already pruned"


def test_heads_that_read_other_positions_are_left_alone() -> None:
    config = transformers.GPT2Config(n_embd=32, n_layer=2, n_head=4, vocab_size=100, n_positions=64, pad_token_id=0)
    model = transformers.GPT2ForSequenceClassification(config).eval()  # reads the last non-padding token
    assert "not a classifier known to read only the first token" in (why_not_prunable(model) or "")
    assert prune_last_layer(model) is not None
    token_model = transformers.BertForTokenClassification(transformers.BertConfig(**SMALL)).eval()
    assert prune_last_layer(token_model) is not None  # every position is an answer
