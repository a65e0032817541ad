"""Chat templates, the system prompt and the think-prefix rule (method §1.1, §3.2, §3.3)."""


import pyarrow.parquet as pq
import pytest
from support import EVAL_DATA

from luffy.data import (
    CHAT_TEMPLATES,
    LUFFY_SYSTEM_PROMPT,
    get_chat_template,
    render_prompt,
    strip_think_prefix,
)
from luffy.model import build_tokenizer

EVAL_PARQUET = EVAL_DATA / "valid.parquet"
USER = [{"role": "user", "content": "Compute 3+4*2-5."}]


@pytest.fixture(scope="module")
def tok():
    return build_tokenizer()


def test_tiny_think_renders_user_turn_and_think_prompt(tok):
    assert render_prompt(tok, USER) == "User: Compute 3+4*2-5.\nAssistant: <think>\n"
    assert render_prompt(tok, USER, template="tiny_think") == "User: Compute 3+4*2-5.\nAssistant: <think>\n"


def test_tiny_think_keeps_a_given_system_message(tok):
    msgs = [{"role": "system", "content": "Be brief."}, *USER]
    assert render_prompt(tok, msgs) == "Be brief.\nUser: Compute 3+4*2-5.\nAssistant: <think>\n"


def test_luffy_think_inserts_the_system_prompt_when_missing(tok):
    out = render_prompt(tok, USER, template="luffy_think")
    assert out == LUFFY_SYSTEM_PROMPT + "\nUser: This is the problem:\nCompute 3+4*2-5.\nAssistant: <think>\n"


def test_luffy_think_uses_a_given_system_message_instead(tok):
    msgs = [{"role": "system", "content": "S"}, *USER]
    out = render_prompt(tok, msgs, template="luffy_think")
    assert out == "S\nUser: This is the problem:\nCompute 3+4*2-5.\nAssistant: <think>\n"


def test_without_generation_prompt_assistant_turns_end_with_eos(tok):
    msgs = [*USER, {"role": "assistant", "content": "6"}]
    out = tok.apply_chat_template(msgs, tokenize=False, add_generation_prompt=False)
    assert out == "User: Compute 3+4*2-5.\nAssistant: 6<|endoftext|>\n"


def test_system_prompt_text_is_exact():
    assert LUFFY_SYSTEM_PROMPT.startswith("Your task is to follow a systematic, thorough reasoning process")
    assert '"<think>\n {thoughts} </think>\n"' in LUFFY_SYSTEM_PROMPT
    assert LUFFY_SYSTEM_PROMPT.endswith("like multiple choices or mathematical solutions.")
    assert "\\boxed{}" in LUFFY_SYSTEM_PROMPT


@pytest.mark.skipif(
    not EVAL_PARQUET.is_file(), reason=f"{EVAL_PARQUET} not present (set LUFFY_EVAL_DATA)"
)
def test_system_prompt_matches_the_reference_parquet_bytes():
    first = pq.read_table(EVAL_PARQUET, columns=["prompt"]).slice(0, 1).to_pylist()[0]["prompt"][0]
    assert first["role"] == "system"
    assert first["content"] == LUFFY_SYSTEM_PROMPT


def test_unknown_template_name_is_a_clear_error(tok):
    with pytest.raises(ValueError, match="unknown chat template 'nope'"):
        render_prompt(tok, USER, template="nope")
    assert set(CHAT_TEMPLATES) == {"luffy_think", "tiny_think"}
    assert get_chat_template("tiny_think") == CHAT_TEMPLATES["tiny_think"]


def test_tokenizer_without_chat_template_is_a_clear_error(tok):
    bare = build_tokenizer()
    bare.chat_template = None
    with pytest.raises(ValueError, match="has no chat_template"):
        render_prompt(bare, USER)


def test_bad_role_is_rejected_by_the_template(tok):
    with pytest.raises(Exception, match="unknown chat role: tool"):
        render_prompt(tok, [*USER, {"role": "tool", "content": "x"}])


@pytest.mark.parametrize(
    ("prompt", "trace", "expected"),
    [
        ("Assistant: <think>\n", "<think>\n1+1=2\n</think>\nA", "1+1=2\n</think>\nA"),  # both: strip 8 chars
        ("Assistant: <think>\n", "1+1=2\n</think>\nA", "1+1=2\n</think>\nA"),  # trace lacks it: unchanged
        ("Assistant:", "<think>\n1+1=2", "<think>\n1+1=2"),  # prompt lacks it: unchanged
        ("Assistant: <think>", "<think>\nx", "<think>\nx"),  # prompt ends without the newline
        ("<think>\n", "<think>\n", ""),
    ],
)
def test_strip_think_prefix(prompt, trace, expected):
    assert strip_think_prefix(prompt, trace) == expected
