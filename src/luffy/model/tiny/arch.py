"""The tiny base model's definition: its config, the byte-level tokenizer and the Qwen2 architecture.

Deviation from the paper's model side: a 260-token byte vocabulary (one token per character of the
task's ASCII text) instead of Qwen's BPE. The pretraining that produces the weights is
:mod:`luffy.model.tiny.build`.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field, model_validator
from tokenizers import AddedToken, Tokenizer, decoders, models, normalizers, pre_tokenizers
from transformers import PreTrainedTokenizerFast, Qwen2Config

from luffy.data.templates import get_chat_template

PAD, EOS = "<|pad|>", "<|endoftext|>"
SPECIALS = (PAD, EOS)
THINK_TAGS = ("<think>", "</think>")
VLLM_CPU_HEAD_DIMS = (32, 64, 80, 96, 112, 128)


class TinyModelConfig(BaseModel):
    """Every knob of the tiny base model and its pretraining.

    Defaults (2 layers x 128, 0.56 M parameters, 600 steps of 32 documents, ~75 s on one
    thread) were tuned on the default task: at the same budget, 3-4 layers, width 256, batch 64
    or a higher learning rate all taught fewer step facts and gave no better starting accuracy.
    Deviation from the design note's "1-5 M parameters": smaller trains further in the budget.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    seed: int = Field(0, description="seeds weight init and the pretraining data order")
    hidden_size: int = Field(128, ge=32)
    num_layers: int = Field(2, ge=1)
    num_heads: int = Field(4, ge=1, description="head_dim = hidden_size / num_heads must suit vLLM CPU")
    num_kv_heads: int = Field(4, ge=1)
    intermediate_size: int = Field(512, ge=32)
    max_position_embeddings: int = Field(512, ge=64)
    rope_theta: float = Field(10000.0, gt=0)
    steps: int = Field(600, ge=0, description="pretraining optimizer steps")
    batch_size: int = Field(32, ge=1, description="documents per step")
    lr: float = Field(5e-3, gt=0, description="peak AdamW learning rate (linear warmup, cosine decay)")
    warmup_steps: int = Field(30, ge=0)
    weight_decay: float = Field(0.01, ge=0)
    fact_fraction: float = Field(0.5, ge=0, le=1, description="share of documents that are fact lines")
    facts_per_doc: int = Field(8, ge=1)
    restate_fraction: float = Field(
        0.0,
        ge=0,
        le=1,
        description="fixed-width tasks only: share of the direct-answer documents that first restate "
        "the padded expression on a line (the teacher's first copy); ignored otherwise",
    )
    step_drill_fraction: float = Field(
        0.0,
        ge=0,
        le=1,
        description="fixed-width tasks only: share of the fact documents that are single-step drills "
        "(state line, fact line, next state line; never a chain, prompt or answer); ignored otherwise",
    )
    steps_per_drill: int = Field(3, ge=1, description="single steps per step-drill document")
    copy_drill_fraction: float = Field(
        0.0,
        ge=0,
        le=1,
        description="fixed-width tasks only: share of the non-fact documents that are copy drills "
        "('Repeat: <expr>.' answered by the expression, no answer); ignored otherwise",
    )
    copy_max_ops: int = Field(
        0,
        ge=0,
        description="copy-drill expressions have 1..copy_max_ops operators (0: the train split's max_ops)",
    )
    threads: int = Field(1, ge=1, description="torch threads during the build (1: see module docstring)")
    eval_n: int = Field(500, ge=0, description="prompts per test split for the starting accuracy")
    eval_max_new_tokens: int = Field(48, ge=1)
    eval_batch_size: int = Field(100, ge=1)

    @model_validator(mode="after")
    def _shapes(self) -> TinyModelConfig:
        if self.hidden_size % self.num_heads or self.num_heads % self.num_kv_heads:
            raise ValueError("hidden_size must divide by num_heads and num_heads by num_kv_heads")
        if self.hidden_size // self.num_heads not in VLLM_CPU_HEAD_DIMS:
            raise ValueError(
                f"head_dim {self.hidden_size // self.num_heads} not in {VLLM_CPU_HEAD_DIMS} (vLLM CPU)"
            )
        if self.warmup_steps > self.steps:
            raise ValueError(f"warmup_steps={self.warmup_steps} > steps={self.steps}")
        return self


def build_tokenizer(chat_template: str = "tiny_think") -> PreTrainedTokenizerFast:
    """Byte-level character tokenizer: ids 0-1 ``<|pad|> <|endoftext|>``, 2-3 think tags, then bytes.

    Byte ``b`` has id ``4 + b``, so every ASCII character (the task's whole alphabet) is one
    token and nothing is ever dropped. There are no merges. The pipeline (NFC, Qwen2's split
    regex, ByteLevel, BPE, ByteLevel decoder) is exactly what ``AutoTokenizer`` rebuilds for a
    ``qwen2`` folder, so the saved folder tokenizes identically everywhere (HF, vLLM).
    (AutoTokenizer also adds a word-splitting regex; without merges it cannot change any id.)
    The think tags are ordinary added tokens (they decode as text with ``skip_special_tokens``);
    nothing is added on encode (no bos/eos), so ``decode(encode(s)) == s``.
    """
    vocab = {t: i for i, t in enumerate([*SPECIALS, *THINK_TAGS])}
    vocab.update({sym: len(vocab) + b for b, sym in byte_symbols().items()})
    tok = Tokenizer(models.BPE(vocab=vocab, merges=[]))
    tok.normalizer = normalizers.NFC()
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False)
    tok.decoder = decoders.ByteLevel()
    tok.add_special_tokens([AddedToken(t, special=True, normalized=False) for t in SPECIALS])
    tok.add_tokens([AddedToken(t, special=False, normalized=False) for t in THINK_TAGS])
    return PreTrainedTokenizerFast(
        tokenizer_object=tok,
        eos_token=EOS,
        pad_token=PAD,
        unk_token=EOS,  # what AutoTokenizer sets for qwen2 folders; byte-level input never needs it
        clean_up_tokenization_spaces=False,
        model_max_length=512,
        chat_template=get_chat_template(chat_template),
    )


def byte_symbols() -> dict[int, str]:
    """The byte-level stand-in character of each byte (the GPT-2 convention ByteLevel uses).

    Printable Latin-1 bytes stand for themselves; the other 68 bytes take code points 256+.
    """
    printable = {*range(ord("!"), ord("~") + 1), *range(0xA1, 0xAD), *range(0xAE, 0x100)}
    spare = iter(range(256, 512))
    return {b: chr(b) if b in printable else chr(next(spare)) for b in range(256)}


def model_config(cfg: TinyModelConfig, tokenizer: PreTrainedTokenizerFast) -> Qwen2Config:
    """The Qwen2 architecture (vLLM-supported) sized by ``cfg``, with tied embeddings."""
    return Qwen2Config(
        vocab_size=len(tokenizer),
        hidden_size=cfg.hidden_size,
        intermediate_size=cfg.intermediate_size,
        num_hidden_layers=cfg.num_layers,
        num_attention_heads=cfg.num_heads,
        num_key_value_heads=cfg.num_kv_heads,
        max_position_embeddings=cfg.max_position_embeddings,
        rope_parameters={"rope_type": "default", "rope_theta": cfg.rope_theta},
        tie_word_embeddings=True,
        bos_token_id=None,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
    )
