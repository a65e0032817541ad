"""The embedded tiny task: determinism, disjoint splits, correct teacher traces, harder OOD."""

import json
import re

import pytest
from pydantic import ValidationError

from luffy.data import TaskConfig, generate_task, load_rows, write_task
from luffy.data.synthetic import SplitSpec, solve, teacher_trace, warmup_split

SMALL = TaskConfig(seed=3, n_train=300, n_train_rl=100, n_test_id=100, n_test_ood=100)
STEP = re.compile(r"^(\d+)([+*-])(\d+)=(-?\d+)$")


@pytest.fixture(scope="module")
def task():
    return generate_task(SMALL)


def _expr(question: str) -> str:
    m = re.fullmatch(r"Compute ([0-9+*()-]+)\.", question)
    assert m, question
    return m.group(1)


def _n_ops(question: str) -> int:
    return sum(c in "+-*" for c in _expr(question))


def test_solve_hand_computed_example():
    p = solve([3, 4, 2, 5], ["+", "*", "-"])
    assert p.text == "Compute 3+4*2-5."
    assert p.steps == ((4, "*", 2, 8), (3, "+", 8, 11), (11, "-", 5, 6))
    assert teacher_trace(p) == "<think>\n4*2=8\n3+8=11\n11-5=6\n</think>\nThe answer is \\boxed{6}."


def test_solve_parentheses_first():
    p = solve([2, 3, 4, 5], ["*", "+", "*"], paren=(0, 1))  # (2*3)+4*5
    assert p.expr == "(2*3)+4*5"
    assert p.steps == ((2, "*", 3, 6), (4, "*", 5, 20), (6, "+", 20, 26))
    q = solve([2, 3, 4, 5], ["-", "+", "*"], paren=(1, 3))  # 2-(3+4*5)
    assert q.expr == "2-(3+4*5)" and q.answer == 2 - (3 + 4 * 5)
    assert q.steps == ((4, "*", 5, 20), (3, "+", 20, 23), (2, "-", 23, -21))


def test_generation_is_deterministic_and_seed_dependent(task):
    assert generate_task(SMALL) == task
    other = generate_task(SMALL.model_copy(update={"seed": 4}))
    assert [r.question for r in other["train"]] != [r.question for r in task["train"]]


def test_split_sizes_and_disjointness(task):
    assert {k: len(v) for k, v in task.items()} == {
        "train": 300,
        "train_rl": 100,
        "test_id": 100,
        "test_ood": 100,
    }
    texts = {k: {r.question for r in v} for k, v in task.items()}
    assert all(len(texts[k]) == len(task[k]) for k in task)  # no duplicates inside a split
    names = list(texts)
    for i, a in enumerate(names):
        for b in names[i + 1 :]:
            assert not texts[a] & texts[b], (a, b)
    assert len({r.id for rows in task.values() for r in rows}) == 600


def test_answers_and_teacher_traces_are_correct(task):
    for rows in task.values():
        for r in rows:
            expr = _expr(r.question)
            assert int(r.answer) == eval(expr)
            for t in r.traces:
                assert t.teacher is not None
                head, tail = t.text.split("</think>\n")
                assert head.startswith("<think>\n")
                lines = head[len("<think>\n") :].splitlines()
                assert len(lines) == _n_ops(r.question)
                for line in lines:  # every step is a true single-operation fact
                    a, op, b, res = STEP.match(line).groups()
                    assert eval(f"{a}{op}{b}") == int(res)
                assert int(STEP.match(lines[-1]).group(4)) == int(r.answer)
                assert re.findall(r"\\boxed\{(-?\d+)\}", tail) == [r.answer]


def test_train_splits_have_one_trace_tests_none(task):
    assert all(len(r.traces) == 1 for r in task["train"] + task["train_rl"])
    assert all(r.traces == [] for r in task["test_id"] + task["test_ood"])
    with_traces = generate_task(SMALL.model_copy(update={"test_traces": True}))
    assert all(len(r.traces) == 1 for r in with_traces["test_ood"])


def test_ood_needs_more_steps_than_training(task):
    train_ops = [_n_ops(r.question) for r in task["train"] + task["train_rl"] + task["test_id"]]
    ood_ops = [_n_ops(r.question) for r in task["test_ood"]]
    assert set(train_ops) == {2, 3}
    assert set(ood_ops) == {4, 5}


def test_intermediate_values_stay_bounded(task):
    for r in task["train"]:
        for line in r.traces[0].text.splitlines()[1:-2]:
            assert 0 <= int(STEP.match(line).group(4)) <= SMALL.train.max_value


def test_three_step_traces_are_short(task):
    lengths = [len(r.traces[0].text) - len("<think>\n") for r in task["train"] if _n_ops(r.question) == 3]
    assert 40 <= sum(lengths) / len(lengths) <= 60


def test_write_task_files_and_manifest(tmp_path, task):
    info = write_task(tmp_path / "t", SMALL)
    files = sorted(p.name for p in (tmp_path / "t").iterdir())
    assert files == ["task.json", "test_id.jsonl", "test_ood.jsonl", "train.jsonl", "train_rl.jsonl", "warmup.jsonl"]
    assert json.loads((tmp_path / "t" / "task.json").read_text()) == info
    assert info["counts"] == {"train": 300, "train_rl": 100, "test_id": 100, "test_ood": 100, "warmup": 300}
    assert TaskConfig(**info["config"]) == SMALL
    assert load_rows(tmp_path / "t" / "train.jsonl") == task["train"]
    again = write_task(tmp_path / "u", SMALL)
    assert again["sha256"] == info["sha256"]  # byte-identical output


def test_warmup_split_keeps_every_kth_trace_and_answers_directly_elsewhere(tmp_path, task):
    same = warmup_split(task["train"], SMALL)  # warmup_trace_every = 1: a copy of train
    assert [(r.id, r.prompt, r.answer, r.traces) for r in same] == [
        (r.id, r.prompt, r.answer, r.traces) for r in task["train"]
    ]
    assert {r.split for r in same} == {"warmup"}
    cfg = SMALL.model_copy(update={"warmup_trace_every": 3})
    rows = warmup_split(task["train"], cfg)
    for i, (w, t) in enumerate(zip(rows, task["train"], strict=True)):
        assert (w.id, w.prompt, w.answer) == (t.id, t.prompt, t.answer)
        if i % 3 == 0:
            assert w.traces == t.traces
        else:
            assert [(x.text, x.teacher) for x in w.traces] == [
                (f"<think>\n</think>\nThe answer is \\boxed{{{t.answer}}}.", "direct")
            ]
    fixed = TaskConfig(fixed_width=20, warmup_trace_every=2, n_train=4, n_train_rl=1, n_test_id=1, n_test_ood=1,
                       train=SplitSpec(min_ops=2, max_ops=2, max_operand=9, max_value=30, left_to_right=True),
                       ood=SplitSpec(min_ops=4, max_ops=4, max_operand=9, max_value=30, left_to_right=True))
    train = generate_task(fixed)["train"]
    direct = warmup_split(train, fixed)[1].traces[0].text
    assert direct == f"<think>\n</think>\nThe answer is \\boxed{{{int(train[1].answer):02d}}}."
    info = write_task(tmp_path / "w", cfg)
    assert load_rows(tmp_path / "w" / "warmup.jsonl") == rows and info["counts"]["warmup"] == 300
    with pytest.raises(ValidationError, match="warmup_trace_every"):
        TaskConfig(warmup_trace_every=0)


def test_warmup_split_guesses_and_cued_copies(task):
    cfg = SMALL.model_copy(update={"warmup_trace_every": 4, "warmup_direct": "guess", "warmup_cue": "Steps: "})
    rows = warmup_split(task["train"], cfg)
    train = task["train"]
    assert len(rows) == 2 * len(train)
    cued, plain = rows[0::2], rows[1::2]
    for c, p, t in zip(cued, plain, train, strict=True):
        assert (c.id, c.prompt[-1]["content"], c.traces) == (f"{t.id}-cued", "Steps: " + t.question, t.traces)
        assert (p.id, p.prompt, p.answer) == (t.id, t.prompt, t.answer)
    guessed = [int(re.search(r"boxed\{(\d+)\}", p.traces[0].text).group(1))
               for i, p in enumerate(plain) if i % 4]
    assert all(p.traces == t.traces for p, t in zip(plain[::4], train[::4], strict=True))
    # a guess is another row's answer: the answers' distribution is kept, the rows are not
    own = [int(t.answer) for i, t in enumerate(train) if i % 4]
    assert sum(g == o for g, o in zip(guessed, own, strict=True)) < 0.3 * len(own)
    assert set(guessed) <= {int(t.answer) for t in train}
    assert warmup_split(train, cfg) == rows  # seeded
    with pytest.raises(ValidationError, match="warmup_direct"):
        TaskConfig(warmup_direct="random")


def test_config_rejects_unknown_keys_and_easy_ood():
    with pytest.raises(ValidationError, match="extra"):
        TaskConfig(n_trian=5)
    with pytest.raises(ValidationError, match="every OOD problem must need more steps or larger numbers"):
        TaskConfig(ood=SplitSpec(min_ops=3, max_ops=5, max_operand=20, max_value=99))
    with pytest.raises(ValidationError, match="min_ops=4 > max_ops=2"):
        SplitSpec(min_ops=4, max_ops=2, max_operand=9, max_value=99)


def test_impossible_counts_are_a_clear_error():
    tiny_space = SplitSpec(min_ops=2, max_ops=2, min_operand=1, max_operand=2, max_value=99)
    ood = SplitSpec(min_ops=3, max_ops=3, min_operand=1, max_operand=2, max_value=99)
    with pytest.raises(ValueError, match="could only draw .* distinct 'train' problems"):
        generate_task(TaskConfig(n_train=100, train=tiny_space, ood=ood))


FIXED = TaskConfig(
    seed=3,
    n_train=300,
    n_train_rl=100,
    n_test_id=100,
    n_test_ood=100,
    trace_format="restate_fixed",
    fixed_width=20,
    train=SplitSpec(min_ops=2, max_ops=3, max_operand=9, max_value=30, left_to_right=True),
    ood=SplitSpec(min_ops=4, max_ops=5, max_operand=9, max_value=30, left_to_right=True),
)


def test_restate_fixed_hand_computed_example():
    p = solve([7, 3, 5, 2], ["*", "+", "-"], width=20)
    assert p.text == "Compute 07*03+05-02_________."
    assert teacher_trace(p, "restate_fixed", 20) == (
        "<think>\n07*03+05-02_________\n07*03=21\n21+05-02____________\n21+05=26\n"
        "26-02_______________\n26-02=24\n</think>\nThe answer is \\boxed{24}."
    )
    assert teacher_trace(p, "steps", 20).startswith("<think>\n07*03=21\n21+05=26\n")


def test_restate_fixed_copies_sit_at_constant_offsets():
    """Every state and fact line is what the fixed-offset rules of restate_fixed_trace say."""
    w = FIXED.fixed_width
    for rows in generate_task(FIXED).values():
        for r in rows:
            expr = r.question.removeprefix("Compute ").removesuffix(".")
            assert len(expr) == w
            assert int(r.answer) == eval(re.sub(r"\b0(\d)", r"\1", expr.rstrip("_")))
            if not r.traces:
                continue
            text = r.traces[0].text
            lines = text.removeprefix("<think>\n").split("</think>")[0].splitlines()
            assert lines[0] == expr
            for k in range(0, len(lines), 2):
                state, fact = lines[k], lines[k + 1]
                assert len(state) == w and fact[:5] == state[:5] and len(fact) == 8
                a, op, b, res = STEP.match(fact).groups()
                assert eval(f"{int(a)}{op}{int(b)}") == int(res)
                if k + 2 < len(lines):
                    assert lines[k + 2] == fact[6:8] + state[5:] + "___"
            assert text.endswith(f"\\boxed{{{lines[-1][6:8]}}}.") and int(lines[-1][6:8]) == int(r.answer)


def test_left_to_right_problems_evaluate_in_order():
    for r in generate_task(FIXED)["train"]:
        ops = [c for c in r.question if c in "+-*"]
        assert "*" not in "".join(ops).lstrip("*")


def test_fixed_width_config_is_validated():
    with pytest.raises(ValidationError, match="needs fixed_width"):
        TaskConfig(trace_format="restate_fixed")
    with pytest.raises(ValidationError, match="fixed_width=17 < 20"):
        FIXED.model_validate({**FIXED.model_dump(), "fixed_width": 17})
    with pytest.raises(ValidationError, match="left_to_right"):
        TaskConfig(trace_format="restate_fixed", fixed_width=20)
