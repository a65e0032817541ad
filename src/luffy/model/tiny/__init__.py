"""The tiny base model of the embedded task: a char-level tokenizer and a small Qwen2 LM.

The base model stands in for Qwen2.5-Math-7B (method §8) on the tiny task (tiny-task design):
it is pretrained briefly on the TRAIN split only, on two kinds of documents,

* problems with short, direct answers, rendered with the ``tiny_think`` chat template::

      User: Compute 3+4*2-5.\\nAssistant: <think>\\n</think>\\nThe answer is \\boxed{6}.<|endoftext|>

* lines of single-operation facts (``14-5=9``), so that the teacher's steps are learnable later.

For a fixed-width task (``TaskConfig.fixed_width``) the numbers are two-digit and two optional
document kinds exist: direct answers that first restate the padded expression
(``restate_fraction``) and single-step drills (``step_drill_fraction``).

It never sees the teacher's step-by-step traces or the test splits. The result knows the answer
format but rarely the answer of a multi-step problem: low, non-zero reward on ``test_id`` and
about zero on ``test_ood`` -- a base model that RL can improve.

Determinism: seeded init and data order, ``torch.use_deterministic_algorithms(True)`` and a
fixed thread count; the same config and task give bit-identical weights on the same machine.
The default is ONE thread: the matrices are tiny, so a second thread gains little, while a
busy 2-core host (two jobs, or a vLLM worker beside the build) makes OpenMP spin-waits cost
5-30x (measured: one train step 3.3 s wall with 1 thread vs 15.9 s with 2 at load 12).
Deviations from the paper's model side: no system prompt; a 260-token byte vocabulary (one
token per character of the task's ASCII text) instead of Qwen's BPE.

Modules: :mod:`~luffy.model.tiny.arch` (config, tokenizer, architecture),
:mod:`~luffy.model.tiny.pretrain` (documents and training loop), :mod:`~luffy.model.tiny.accuracy`
(starting and fact accuracy) and :mod:`~luffy.model.tiny.build` (:func:`build_base_model`).
"""

from luffy.model.tiny.accuracy import fact_accuracy, measure_accuracy
from luffy.model.tiny.arch import (
    EOS,
    PAD,
    SPECIALS,
    THINK_TAGS,
    VLLM_CPU_HEAD_DIMS,
    TinyModelConfig,
    build_tokenizer,
    byte_symbols,
    model_config,
)
from luffy.model.tiny.build import build_base_model
from luffy.model.tiny.pretrain import direct_answer_doc, fact_doc, sample_fact

__all__ = [
    "EOS",
    "PAD",
    "SPECIALS",
    "THINK_TAGS",
    "VLLM_CPU_HEAD_DIMS",
    "TinyModelConfig",
    "build_base_model",
    "build_tokenizer",
    "byte_symbols",
    "direct_answer_doc",
    "fact_accuracy",
    "fact_doc",
    "measure_accuracy",
    "model_config",
    "sample_fact",
]
