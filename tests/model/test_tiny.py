"""The tiny base model: char tokenizer, HF folder layout, determinism (tiny budgets only)."""

import hashlib
import json
import random
import re

import pytest
import torch
from pydantic import ValidationError
from safetensors.torch import load_file
from transformers import AutoModelForCausalLM, AutoTokenizer

from luffy.data import TaskConfig, generate_task, render_prompt, write_task
from luffy.data.synthetic import SplitSpec
from luffy.model import TinyModelConfig, build_base_model, build_tokenizer
from luffy.model.tiny import byte_symbols, fact_doc, sample_fact
from luffy.model.tiny.pretrain import (
    copy_drill_doc,
    direct_answer_doc,
    draw_document,
    restate_answer_doc,
    step_drill_doc,
)

TASK = TaskConfig(seed=1, n_train=40, n_train_rl=5, n_test_id=5, n_test_ood=5)
FAST = TinyModelConfig(
    hidden_size=64, num_heads=2, num_kv_heads=1, num_layers=1, intermediate_size=128,
    steps=3, warmup_steps=1, batch_size=8, eval_n=3, eval_max_new_tokens=4, eval_batch_size=3, threads=1,
)  # fmt: skip


@pytest.fixture(scope="module")
def tok():
    return build_tokenizer()


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    root = tmp_path_factory.mktemp("tiny")
    write_task(root / "task", TASK)
    card = build_base_model(root / "task", root / "model", FAST)
    return root, card


def test_tokenizer_round_trips_all_task_text(tok):
    for rows in generate_task(TASK).values():
        for r in rows:
            for text in [render_prompt(tok, r.prompt), *(t.text for t in r.traces)]:
                ids = tok(text, add_special_tokens=False)["input_ids"]
                assert len(ids) == len(text) - 6 * text.count("<think>") - 7 * text.count("</think>")
                assert tok.decode(ids) == text


def test_tokenizer_ids_and_think_tags(tok):
    assert (tok.pad_token_id, tok.eos_token_id) == (0, 1)
    assert len(tok) == 2 + 2 + 256  # pad/eos, think tags, one token per byte
    assert tok("<think>\n</think>")["input_ids"] == [2, 4 + ord("\n"), 3]
    assert tok("ab")["input_ids"] == [4 + ord("a"), 4 + ord("b")]  # byte b has id 4 + b
    # think tags are text, not special: they survive skip_special_tokens; eos and pad do not
    assert tok.decode([2, 3, 1, 0], skip_special_tokens=True) == "<think></think>"
    assert tok("é")["input_ids"] == [4 + 0xC3, 4 + 0xA9]  # non-ASCII: its UTF-8 bytes, never dropped
    assert tok.decode(tok("é ü\t")["input_ids"]) == "é ü\t"


def test_byte_symbols_match_the_bytelevel_pre_tokenizer():
    from tokenizers import pre_tokenizers

    symbols = byte_symbols()
    assert set(symbols.values()) == set(pre_tokenizers.ByteLevel.alphabet())
    level = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False)
    assert all(level.pre_tokenize_str(chr(b))[0][0] == symbols[b] for b in range(128))


def test_folder_layout_and_auto_loading(built, tok):
    root, _ = built
    folder = root / "model"
    for name in ["config.json", "model.safetensors", "generation_config.json", "tokenizer.json",
                 "tokenizer_config.json", "chat_template.jinja", "model_card.json"]:  # fmt: skip
        assert (folder / name).is_file(), name
    model = AutoModelForCausalLM.from_pretrained(folder, local_files_only=True)
    loaded = AutoTokenizer.from_pretrained(folder, local_files_only=True)
    assert type(model).__name__ == "Qwen2ForCausalLM"
    assert model.config.tie_word_embeddings and model.config.vocab_size == len(loaded) == 260
    assert model.config.max_position_embeddings == 512
    assert (model.generation_config.eos_token_id, model.generation_config.pad_token_id) == (1, 0)
    msgs = [{"role": "user", "content": "Compute 1+2*3."}]
    assert render_prompt(loaded, msgs) == "User: Compute 1+2*3.\nAssistant: <think>\n"
    for rows in generate_task(TASK).values():  # AutoTokenizer rebuilds it as Qwen2Tokenizer: same ids
        for text in [render_prompt(loaded, rows[0].prompt), *(t.text for t in rows[0].traces), "é\t x"]:
            assert loaded(text)["input_ids"] == tok(text)["input_ids"]
            assert loaded.decode(loaded(text)["input_ids"]) == text
    out = model.generate(
        **loaded(render_prompt(loaded, msgs), return_tensors="pt"),
        max_new_tokens=3,
        min_new_tokens=3,
        do_sample=False,
    )
    assert out.shape == (1, len(render_prompt(loaded, msgs)) - 6 + 3)


def test_model_card_contents(built):
    root, card = built
    assert json.loads((root / "model" / "model_card.json").read_text()) == card
    assert card["config"] == FAST.model_dump()
    assert card["n_params"] == sum(
        p.numel() for p in AutoModelForCausalLM.from_pretrained(root / "model").parameters()
    )
    assert [s for s, _ in card["pretrain"]["loss"]][-1] == FAST.steps - 1
    assert 0.0 <= card["fact_accuracy"] <= 1.0
    for split in ("test_id", "test_ood"):
        acc = card["starting_accuracy"][split]
        assert acc["n"] == 3
        for mode in ("greedy", "t1"):
            assert 0.0 <= acc[mode]["accuracy"] <= 1.0 and 1 <= acc[mode]["mean_tokens"] <= 4


def test_fact_sampler_follows_the_step_distribution():
    spec = TaskConfig().train
    rng = random.Random(0)
    facts = [sample_fact(rng, spec) for _ in range(300)]
    for a, op, b, r in facts:
        assert (a + b if op == "+" else a - b if op == "-" else a * b) == r
        assert 0 <= r <= spec.max_value and max(a, b) <= spec.max_value
    assert {op for _, op, _, _ in facts} == {"+", "-", "*"}
    assert re.fullmatch(r"(\d+[-+*]\d+=\d+\n){8}", fact_doc(random.Random(1), 8, spec))


def test_two_builds_give_identical_weights(built, tmp_path):
    root, _ = built
    build_base_model(root / "task", tmp_path / "again", FAST)
    a, b = (
        load_file(root / "model" / "model.safetensors"),
        load_file(tmp_path / "again" / "model.safetensors"),
    )
    assert a.keys() == b.keys()
    assert all(torch.equal(a[k], b[k]) for k in a)
    other = build_base_model(root / "task", tmp_path / "seed1", FAST.model_copy(update={"seed": 1}))
    c = load_file(tmp_path / "seed1" / "model.safetensors")
    assert not all(torch.equal(a[k], c[k]) for k in a)
    assert other["n_params"] == sum(v.numel() for v in c.values())


def test_build_restores_torch_global_state(built, tmp_path):
    root, _ = built
    threads, det = torch.get_num_threads(), torch.are_deterministic_algorithms_enabled()
    try:
        torch.set_num_threads(2)
        build_base_model(root / "task", tmp_path / "m", FAST)  # runs with threads=1, deterministic
        assert (torch.get_num_threads(), torch.are_deterministic_algorithms_enabled()) == (2, det)
    finally:
        torch.set_num_threads(threads)


def test_pretraining_reduces_loss(built, tmp_path):
    root, _ = built
    card = build_base_model(
        root / "task", tmp_path / "m", FAST.model_copy(update={"steps": 30, "warmup_steps": 3})
    )
    losses = [loss for _, loss in card["pretrain"]["loss"]]
    assert losses[-1] < 0.7 * losses[0]  # starts near ln(260) = 5.6


def test_config_validation():
    with pytest.raises(ValidationError, match="head_dim 16"):
        TinyModelConfig(hidden_size=64, num_heads=4)
    with pytest.raises(ValidationError, match="extra"):
        TinyModelConfig(hidden=64)
    with pytest.raises(ValidationError, match="warmup_steps=5 > steps=2"):
        TinyModelConfig(steps=2, warmup_steps=5)


def test_missing_task_manifest_is_a_clear_error(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"task\.json: missing"):
        build_base_model(tmp_path, tmp_path / "m", FAST)


FIXED_TASK = TaskConfig(
    seed=1, n_train=40, n_train_rl=5, n_test_id=5, n_test_ood=5, trace_format="restate_fixed", fixed_width=20,
    train=SplitSpec(min_ops=2, max_ops=3, max_operand=9, max_value=30, left_to_right=True),
    ood=SplitSpec(min_ops=4, max_ops=5, max_operand=9, max_value=30, left_to_right=True),
)  # fmt: skip


def test_fixed_width_documents(tok):
    rows = generate_task(FIXED_TASK)["train"]
    spec = FIXED_TASK.train
    assert re.fullmatch(r"(\d\d[-+*]\d\d=\d\d\n){8}", fact_doc(random.Random(1), 8, spec, fixed=True))
    direct = direct_answer_doc(tok, rows[0], fixed=True)
    assert direct.endswith(f"</think>\nThe answer is \\boxed{{{int(rows[0].answer):02d}}}.{tok.eos_token}")
    restated = restate_answer_doc(tok, rows[0])
    expr = rows[0].question.removeprefix("Compute ").removesuffix(".")
    assert restated == render_prompt(tok, rows[0].prompt) + expr + "\n" + direct.split("<think>\n")[-1]
    drill = step_drill_doc(random.Random(2), 3, spec, 20)
    for block in drill.split("\n\n"):
        lines = block.strip("\n").split("\n")
        assert len(lines) in (2, 3) and len(lines[0]) == 20 and lines[1][:5] == lines[0][:5]
    copy = copy_drill_doc(tok, random.Random(3), spec, 20)
    m = re.fullmatch(
        r"User: Repeat: (\S{20})\.\nAssistant: <think>\n(\S{20})\n</think>\n<\|endoftext\|>", copy
    )
    assert m and m[1] == m[2]
    assert copy.index("<think>") - copy.index(m[1]) == restated.index("<think>") - restated.index(expr)


def test_fixed_width_build_uses_the_new_documents(tmp_path):
    write_task(tmp_path / "task", FIXED_TASK)
    cfg = FAST.model_copy(
        update={"restate_fraction": 0.5, "step_drill_fraction": 0.5, "copy_drill_fraction": 0.5}
    )
    card = build_base_model(tmp_path / "task", tmp_path / "model", cfg)
    assert card["config"]["restate_fraction"] == 0.5 and 0.0 <= card["fact_accuracy"] <= 1.0


#: sha256 of the first 200 documents of TinyModelConfig(seed=0, restate_fraction=0.5) on FIXED_TASK.
PINNED_STREAM = "7230090ea75c377f0274c860663471bfa7c557f8c06d79bf116c04be63a34fe0"


def _documents(tok, cfg, n=200):
    """The first ``n`` pretraining documents of ``cfg`` on FIXED_TASK (width 20), as pretrain draws them."""
    rows = generate_task(FIXED_TASK)["train"]
    problems = [tok(direct_answer_doc(tok, r, True))["input_ids"] for r in rows]
    restated = [tok(restate_answer_doc(tok, r))["input_ids"] for r in rows]
    copy_spec = FIXED_TASK.train.model_copy(update={"min_ops": 1})
    rng = random.Random(cfg.seed)
    return [draw_document(rng, tok, cfg, FIXED_TASK.train, copy_spec, 20, problems, restated) for _ in range(n)]


def test_options_at_their_defaults_leave_the_document_stream_unchanged(tok):
    """A base model is reproducible only while options at their defaults draw nothing: a copy-drill
    draw made with copy_drill_fraction 0 once changed every document after the first non-fact one
    (and the base of the miniature's gate runs could not be rebuilt)."""
    base = TinyModelConfig(seed=0, restate_fraction=0.5)
    docs = _documents(tok, base)
    assert docs == _documents(tok, base.model_copy(update={"copy_max_ops": 3}))
    digest = hashlib.sha256(json.dumps(docs).encode()).hexdigest()
    assert digest == PINNED_STREAM, f"the pretraining document stream changed: {digest}"
    drills = _documents(tok, base.model_copy(update={"copy_drill_fraction": 0.5}))
    assert drills != docs  # the option does something when it is on
