"""Shared fixtures: one random tiny Qwen2 + char tokenizer saved to a temp folder.

The model is the project's tiny architecture (``luffy.model.tiny``) shrunk to 2 layers and left
untrained: logits are close to uniform over ~100 tokens, so T=1 samples hit EOS now and then and
greedy outputs are still input-dependent. Tests must not modify ``tiny.model`` (deep-copy it).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pytest
import torch
from transformers import PreTrainedTokenizerFast, Qwen2ForCausalLM

from luffy.model.tiny import TinyModelConfig, build_tokenizer, model_config

PROMPTS_TEXT = ["12+3=", "Compute 7*8-2.", "(4+5)*6", "9"]


@dataclass(frozen=True)
class Tiny:
    model: Qwen2ForCausalLM
    tokenizer: PreTrainedTokenizerFast
    path: Path

    def prompts(self) -> list[list[int]]:
        """Four prompts of different lengths (5, 14, 7 and 1 tokens)."""
        return [self.tokenizer(t, add_special_tokens=False)["input_ids"] for t in PROMPTS_TEXT]


@pytest.fixture(scope="session")
def tiny(tmp_path_factory: pytest.TempPathFactory) -> Tiny:
    tok = build_tokenizer()
    cfg = TinyModelConfig(hidden_size=128, num_layers=2, num_heads=4, num_kv_heads=2, intermediate_size=256)
    torch.manual_seed(1234)
    model = Qwen2ForCausalLM(model_config(cfg, tok)).float()
    path = tmp_path_factory.mktemp("tiny_rollout_model")
    model.save_pretrained(path)
    tok.save_pretrained(path)
    model.train()  # like a trainer's model: engines must cope with (and restore) train mode
    return Tiny(model, tok, path)


def _spike(model: Qwen2ForCausalLM, token: int) -> None:
    """Rewrite ``model`` in place so that ``token`` has the top logit after every input.

    Zeroed o_proj / down_proj make every layer add nothing to the residual stream, so the final
    hidden state is RMSNorm(embedding of the last token) with norm weight 1. Every embedding
    (and lm_head) row is the all-ones vector u except row ``token`` = 2u, so the normed state is u
    and the logits are u·u = H for every id but ``token``, which gets 2H (H = hidden size).
    """
    with torch.no_grad():
        for layer in model.model.layers:
            layer.self_attn.o_proj.weight.zero_()
            layer.mlp.down_proj.weight.zero_()
        model.model.norm.weight.fill_(1.0)
        for w in {model.model.embed_tokens.weight, model.lm_head.weight}:  # one tensor when tied
            w.fill_(1.0)
            w[token].fill_(2.0)


@pytest.fixture(scope="session")
def spike():
    """``spike(model, token)``: rewrite a model in place so ``token`` is the argmax after any input."""
    return _spike
