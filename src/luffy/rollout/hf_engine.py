"""Rollouts with the trainer's own Hugging Face model, in memory (method §1.1).

The engine wraps the trainer's model object, so it always samples from the current weights and
``sync_weights`` is a no-op for that object (another module's weights are copied in place).

Per call, the ``n`` copies of every prompt are laid out prompt-major (prompt 0 × n, prompt 1 × n,
…), left-padded, and generated in chunks of ``max_batch_size`` sequences with the KV cache, in
eval mode under ``no_grad``; the model's train/eval mode is restored afterwards.

Sampling is exactly temperature + top-p (``temperature == 0`` → greedy): the model's own
``generation_config`` (e.g. a checkpoint's top_k / repetition_penalty) is ignored during the
call, and transformers' global ``top_k=50`` default is switched off.

Seeding: with ``sampling.seed`` set, generation runs in a forked torch RNG seeded with it, so the
call is reproducible and the trainer's global RNG is untouched. Deviation from vLLM's per-sample
seeds: the samples of one call share one random stream, so a sample depends on the whole batch
layout (the prompts, ``n`` and ``max_batch_size``), not only on the seed.

Decoding (``decode``):

* ``"compact"`` (default): the engine's own KV-cached loop (:func:`compact_decode`). A sequence
  leaves the batch (and its rows leave the KV cache) as soon as it has sampled EOS, so a batch
  costs about its mean response length instead of its longest, and nothing but temperature,
  top-p and ``min_new_tokens`` runs per token. Greedy output equals ``generate``'s; sampled
  output has the same distribution, from another random stream.
* ``"generate"``: ``model.generate`` (any model transformers can generate with).

Options: ``max_batch_size`` (sequences per batch), ``autocast_dtype`` (e.g. ``"bfloat16"`` to
run fp32 weights under autocast; None = the model's own dtype), ``decode``. ``model_path`` is
accepted and ignored, so that :func:`make_engine` passes the same arguments to every engine.
"""

from __future__ import annotations

import contextlib
import inspect
from collections.abc import Iterator
from typing import Any

import torch
from transformers import DynamicCache, GenerationConfig

from ..model.attention import eager_attention_on_cpu
from .base import Generation, RolloutEngine, SamplingConfig, check_request, eos_id_of, trim_at_eos


class HFEngine(RolloutEngine):
    name = "hf"

    def __init__(
        self,
        model: torch.nn.Module | None = None,
        model_path: str | None = None,
        tokenizer: Any = None,
        *,
        max_batch_size: int = 64,
        autocast_dtype: str | None = None,
        decode: str = "compact",
    ) -> None:
        if model is None or not hasattr(model, "generate"):
            raise ValueError(
                f"HFEngine: model must be a transformers generative model, got {type(model).__name__}"
            )
        if isinstance(max_batch_size, bool) or not isinstance(max_batch_size, int) or max_batch_size < 1:
            raise ValueError(f"HFEngine: max_batch_size must be an int >= 1, got {max_batch_size!r}")
        if decode not in DECODERS:
            raise ValueError(f"HFEngine: decode must be one of {sorted(DECODERS)}, got {decode!r}")
        self.decode = decode
        self.model = model
        self.eos_id = eos_id_of(tokenizer)
        pad = getattr(tokenizer, "pad_token_id", None)
        self.pad_id = pad if isinstance(pad, int) else self.eos_id
        self.max_batch_size = max_batch_size
        self.autocast_dtype = _dtype(autocast_dtype)
        self.vocab_size = int(model.get_input_embeddings().weight.shape[0])

    # ------------------------------------------------------------------------- contract
    def generate(self, prompts: list[list[int]], n: int, sampling: SamplingConfig) -> list[list[Generation]]:
        check_request(prompts, n, sampling, vocab_size=self.vocab_size)
        flat = [
            list(p) for p in prompts for _ in range(n)
        ]  # prompt-major: row i*n + j = sample j of prompt i
        responses: list[list[int]] = []
        with self._generation_mode(sampling.seed):
            for s in range(0, len(flat), self.max_batch_size):
                responses.extend(self._generate_batch(flat[s : s + self.max_batch_size], sampling))
        out: list[list[Generation]] = []
        for i, p in enumerate(prompts):
            group = []
            for r in responses[i * n : (i + 1) * n]:
                ids, reason = trim_at_eos(r, self.eos_id, sampling.max_new_tokens)
                group.append(Generation(prompt_ids=list(p), response_ids=ids, finish_reason=reason))
            out.append(group)
        return out

    def sync_weights(self, model: torch.nn.Module) -> None:
        """No-op for the wrapped model itself; another module's state is copied in place (strict)."""
        if model is self.model:
            return
        with torch.no_grad():
            self.model.load_state_dict(model.state_dict(), strict=True)

    # ------------------------------------------------------------------------- internals
    def _generate_batch(self, batch: list[list[int]], sampling: SamplingConfig) -> list[list[int]]:
        """Left-pad ``batch`` (B prompts) and return each row's B generated-id lists (pads included)."""
        device = self.model.get_input_embeddings().weight.device
        width = max(len(p) for p in batch)
        ids = torch.full((len(batch), width), self.pad_id, dtype=torch.long)  # (B, P)
        mask = torch.zeros((len(batch), width), dtype=torch.long)  # (B, P), 1 = real token
        for r, p in enumerate(batch):
            ids[r, width - len(p) :] = torch.tensor(p, dtype=torch.long)
            mask[r, width - len(p) :] = 1
        with eager_attention_on_cpu(  # bf16 on CPU: eager attention is faster (luffy.model.attention)
            self.model, len(batch), width, width + sampling.max_new_tokens, keep_for_backward=False
        ):
            if self.decode == "compact":
                return compact_decode(self.model, ids.to(device), mask.to(device), sampling, self.eos_id)
            out = self.model.generate(
                input_ids=ids.to(device), attention_mask=mask.to(device), generation_config=self._config(sampling)
            )  # (B, P + T), T <= max_new_tokens
        return out[:, width:].tolist()

    def _config(self, sampling: SamplingConfig) -> GenerationConfig:
        knobs: dict[str, Any] = {"do_sample": False}
        if not sampling.greedy:  # top_k=0: transformers defaults to 50; vLLM and method §1.1 use none
            knobs = {
                "do_sample": True,
                "temperature": sampling.temperature,
                "top_p": sampling.top_p,
                "top_k": 0,
            }
        if sampling.min_new_tokens:
            knobs["min_new_tokens"] = sampling.min_new_tokens
        return GenerationConfig(
            max_new_tokens=sampling.max_new_tokens,
            num_beams=1,
            repetition_penalty=1.0,
            eos_token_id=self.eos_id,
            pad_token_id=self.pad_id,
            use_cache=True,
            **knobs,
        )

    @contextlib.contextmanager
    def _generation_mode(self, seed: int | None) -> Iterator[None]:
        """eval + no_grad (+ autocast, + forked seeded RNG); restores mode and generation_config."""
        model = self.model
        was_training, saved_cfg = model.training, getattr(model, "generation_config", None)
        device = model.get_input_embeddings().weight.device
        rng = (
            torch.random.fork_rng(devices=[device] if device.type == "cuda" else [])
            if seed is not None
            else contextlib.nullcontext()
        )
        amp = (
            torch.autocast(device.type, dtype=self.autocast_dtype)
            if self.autocast_dtype is not None
            else contextlib.nullcontext()
        )
        model.eval()
        if saved_cfg is not None:
            model.generation_config = GenerationConfig()  # nothing inherited from the checkpoint
        try:
            with rng, torch.no_grad(), amp:
                if seed is not None:
                    torch.manual_seed(seed)
                yield
        finally:
            if saved_cfg is not None:
                model.generation_config = saved_cfg
            model.train(was_training)


DECODERS = ("compact", "generate")


def compact_decode(model: torch.nn.Module, ids: torch.Tensor, mask: torch.Tensor, sampling: SamplingConfig,
                   eos_id: int) -> list[list[int]]:
    """Sample continuations of B left-padded prompts ``ids`` long[B, P] (``mask`` long[B, P], 1 = token).

    Returns B token lists, each ending at its first EOS (kept) or after ``max_new_tokens`` tokens.
    Prefill runs once over the prompts (the output head on the last position only); then one token
    per step for the sequences still running. Rows whose sequence sampled EOS are dropped from the
    batch, the attention mask and the KV cache (``DynamicCache.batch_select_indices``). Position
    ids are ``cumsum(mask) - 1`` as in ``generate``, so left padding does not shift them.
    Per-token sampling (method §1.1): logits / temperature (argmax when greedy), top-p over the
    sorted probabilities (the smallest set whose mass reaches top_p, at least one token), EOS
    masked while fewer than ``min_new_tokens`` tokens were sampled; draws use torch's global RNG.
    Runs under the caller's ``no_grad`` / autocast.
    """
    b = ids.shape[0]
    position = (mask.cumsum(-1) - 1).clamp(min=0)
    cache = DynamicCache(config=model.config)
    head_last = {"logits_to_keep": 1} if "logits_to_keep" in inspect.signature(model.forward).parameters else {}
    out = model(input_ids=ids, attention_mask=mask, position_ids=position, past_key_values=cache,
                use_cache=True, **head_last)
    logits = out.logits[:, -1].float()                                        # [b, V]
    running = torch.arange(b, device=ids.device)                              # row of each live sequence
    nxt = position[:, -1:] + 1                                                # [b, 1]
    tokens: list[list[int]] = [[] for _ in range(b)]
    for t in range(sampling.max_new_tokens):
        pick = _sample(logits, sampling, eos_id if t < sampling.min_new_tokens else None)   # [b_live]
        ended = pick == eos_id
        for row, tok in zip(running.tolist(), pick.tolist()):
            tokens[row].append(tok)
        if t + 1 == sampling.max_new_tokens or bool(ended.all()):
            break
        if bool(ended.any()):
            keep = (~ended).nonzero().squeeze(1)
            cache.batch_select_indices(keep)
            running, mask, nxt, pick = running[keep], mask[keep], nxt[keep], pick[keep]
        mask = torch.cat([mask, mask.new_ones((mask.shape[0], 1))], dim=1)
        out = model(input_ids=pick[:, None], attention_mask=mask, position_ids=nxt, past_key_values=cache,
                    use_cache=True)
        logits, nxt = out.logits[:, -1].float(), nxt + 1
    return tokens


def _sample(logits: torch.Tensor, sampling: SamplingConfig, banned: int | None) -> torch.Tensor:
    """One token per row of ``logits`` float[b, V] -> long[b]; ``banned``: a token id that cannot be drawn."""
    if banned is not None:
        logits = logits.clone()
        logits[:, banned] = float("-inf")
    if sampling.greedy:
        return logits.argmax(-1)
    probs = torch.softmax(logits / sampling.temperature, dim=-1)
    if sampling.top_p < 1.0:
        sorted_p, order = probs.sort(dim=-1, descending=True)
        outside = sorted_p.cumsum(-1) - sorted_p >= sampling.top_p            # mass before it already >= top_p
        sorted_p = sorted_p.masked_fill(outside, 0.0)
        probs = torch.zeros_like(probs).scatter_(-1, order, sorted_p)
    return torch.multinomial(probs, 1).squeeze(1)


def _dtype(name: str | None) -> torch.dtype | None:
    if name is None:
        return None
    allowed = {"bfloat16": torch.bfloat16, "float16": torch.float16}
    if name not in allowed:
        raise ValueError(f"HFEngine: autocast_dtype must be one of {sorted(allowed)} or None, got {name!r}")
    return allowed[name]
