"""Sequence classifiers read one position of the last layer: compute that layer for it alone.

A BERT-family classification head reads the final hidden state of the first token only
(BERT's pooler, RoBERTa's and ELECTRA's heads: ``features[:, 0]``; DistilBERT's
``hidden_state[:, 0]``). The encoder still computes the last layer for every token, and
everything there except the keys and values is thrown away. ``prune_last_layer`` swaps that
layer for ``FirstTokenLayer``: keys and values from every token as before, but the query,
attention output, feed-forward and layer norms for the first position only. Same weights,
same arithmetic, an answer equal to the unpruned model's up to float rounding
(``tests/test_first_token.py``).

Saved: about 5/6 of one layer, which is about 14 % of DistilBERT's six layers and 7 % of
RoBERTa-base's twelve (docs/benchmarks.md); every runtime gains, since the ONNX exports are
made from the pruned model.

Only the classes in ``_ADAPTERS`` are pruned: their heads are known to read position 0 and
their last layer's parts are known by name. Anything else (other heads, decoder or
cross-attention configurations, attention implementations other than eager and SDPA) is
left untouched, with the reason.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn


@dataclass(frozen=True)
class _Parts:
    """Where one architecture keeps its last layer's pieces.

    Layers and attention modules are typed ``Any``: their pieces are architecture-specific
    attributes that ``nn.Module``'s typing cannot describe.
    """

    layers: Callable[[Any], nn.ModuleList]  # the model -> its encoder layers
    attention: Callable[[Any], Any]  # a layer -> the self-attention module
    projections: tuple[str, str, str]  # query, key, value Linear names on the attention module
    heads: str  # attribute of the attention module: number of heads
    finish: Callable[[Any, torch.Tensor, torch.Tensor], torch.Tensor]  # (layer, context, residual) -> output


def _finish_bert(layer: Any, context: torch.Tensor, residual: torch.Tensor) -> torch.Tensor:
    attended = layer.attention.output(context, residual)  # dense, dropout, LayerNorm(+ residual)
    output: torch.Tensor = layer.output(layer.intermediate(attended), attended)
    return output


def _finish_distilbert(layer: Any, context: torch.Tensor, residual: torch.Tensor) -> torch.Tensor:
    attended = layer.sa_layer_norm(layer.attention.out_lin(context) + residual)
    output: torch.Tensor = layer.output_layer_norm(layer.ffn(attended) + attended)
    return output


_BERT = _Parts(
    layers=lambda model: model.base_model.encoder.layer,
    attention=lambda layer: layer.attention.self,
    projections=("query", "key", "value"),
    heads="num_attention_heads",
    finish=_finish_bert,
)
_DISTILBERT = _Parts(
    layers=lambda model: model.distilbert.transformer.layer,
    attention=lambda layer: layer.attention,
    projections=("q_lin", "k_lin", "v_lin"),
    heads="n_heads",
    finish=_finish_distilbert,
)
# Classification models whose head reads only the first position of the last hidden state.
_ADAPTERS: dict[str, _Parts] = {
    "BertForSequenceClassification": _BERT,
    "RobertaForSequenceClassification": _BERT,
    "XLMRobertaForSequenceClassification": _BERT,
    "CamembertForSequenceClassification": _BERT,
    "ElectraForSequenceClassification": _BERT,
    "DistilBertForSequenceClassification": _DISTILBERT,
}
_ATTENTION_IMPLEMENTATIONS = ("eager", "sdpa")


class FirstTokenLayer(nn.Module):
    """The last encoder layer, answering for position 0 only: output shape ``(batch, 1, hidden)``."""

    def __init__(self, layer: nn.Module, parts: _Parts) -> None:
        super().__init__()
        self.layer = layer
        self.parts = parts
        attention = parts.attention(layer)
        self.query, self.key, self.value = (getattr(attention, name) for name in parts.projections)
        self.heads = int(getattr(attention, parts.heads))
        self.head_size = self.query.out_features // self.heads
        self.scaling = float(getattr(attention, "scaling", self.head_size**-0.5))
        eager = sys.modules[type(attention).__module__].eager_attention_forward
        from transformers.modeling_utils import ALL_ATTENTION_FUNCTIONS

        self.attend = ALL_ATTENTION_FUNCTIONS.get_interface(attention.config._attn_implementation, eager)
        self.attention_module = [attention]  # a list: not registered twice as a submodule

    def _split(self, projected: torch.Tensor) -> torch.Tensor:
        batch, length, _ = projected.shape
        return projected.view(batch, length, self.heads, self.head_size).transpose(1, 2)

    def forward(self, hidden_states: torch.Tensor, attention_mask: torch.Tensor | None = None, *args: Any, **kwargs: Any) -> torch.Tensor:
        first = hidden_states[:, :1]
        query = self._split(self.query(first))
        key, value = self._split(self.key(hidden_states)), self._split(self.value(hidden_states))
        if isinstance(attention_mask, torch.Tensor) and attention_mask.dim() == 4 and attention_mask.shape[2] > 1:
            attention_mask = attention_mask[:, :, :1]  # the first query row of a (batch, 1, query, key) mask
        context, _ = self.attend(self.attention_module[0], query, key, value, attention_mask, dropout=0.0, scaling=self.scaling)
        context = context.reshape(first.shape[0], 1, -1)
        return self.parts.finish(self.layer, context, first)


def why_not_prunable(model: Any) -> str | None:
    """None when ``prune_last_layer`` applies to ``model``; otherwise the reason it does not."""
    name = type(model).__name__
    config = getattr(model, "config", None)
    if name not in _ADAPTERS:
        return f"{name} is not a classifier known to read only the first token"
    if config is None or getattr(config, "is_decoder", False) or getattr(config, "add_cross_attention", False):
        return f"{name} is configured as a decoder"
    implementation = getattr(config, "_attn_implementation", None)
    if implementation not in _ATTENTION_IMPLEMENTATIONS:
        return f"attention implementation {implementation!r} is not one of {', '.join(_ATTENTION_IMPLEMENTATIONS)}"
    layers = _ADAPTERS[name].layers(model)
    if len(layers) == 0 or isinstance(layers[-1], FirstTokenLayer):
        return "the last layer is already pruned" if len(layers) else "the model has no layers"
    return None


def prune_last_layer(model: Any) -> str | None:
    """Make ``model``'s last layer compute the first token only; returns why not, or None when done.

    The model's ``last_hidden_state`` then has one position; its logits are unchanged.
    """
    reason = why_not_prunable(model)
    if reason is None:
        parts = _ADAPTERS[type(model).__name__]
        layers = parts.layers(model)
        layers[-1] = FirstTokenLayer(layers[-1], parts)
    return reason
