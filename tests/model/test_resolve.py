"""``luffy resolve-model`` (method §8, §3.2) on a tiny local Qwen2 folder; the hub download is faked."""

import hashlib
import json
import shutil

import pytest
import torch
from safetensors.torch import load_file
from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer, Qwen2ForCausalLM

from luffy.cli import main
from luffy.data.templates import LUFFY_SYSTEM_PROMPT, get_chat_template
from luffy.model.tiny import TinyModelConfig, build_tokenizer, model_config

SMALL = TinyModelConfig(
    hidden_size=64,
    num_heads=2,
    num_kv_heads=1,
    num_layers=1,
    intermediate_size=128,
    max_position_embeddings=512,
    rope_theta=10000.0,
    steps=0,
    warmup_steps=0,
)


@pytest.fixture(scope="module")
def base_dir(tmp_path_factory):
    """A saved tiny model: rope_parameters.rope_theta 10000, max_position_embeddings 512, tiny_think template."""
    path = tmp_path_factory.mktemp("base") / "model"
    tok = build_tokenizer()
    torch.manual_seed(0)
    Qwen2ForCausalLM(model_config(SMALL, tok)).save_pretrained(path)
    tok.save_pretrained(path)
    return path


def _copy(base_dir, tmp_path, edit=None):
    """A copy of the base folder, its config.json changed by ``edit(dict)``."""
    path = tmp_path / "base"
    shutil.copytree(base_dir, path)
    if edit:
        cfg = json.loads((path / "config.json").read_text())
        edit(cfg)
        (path / "config.json").write_text(json.dumps(cfg))
    return path


def _resolve(base, out, *args):
    return main(["resolve-model", "--base", str(base), *args, "--out", str(out)])


def _error_line(capsys):
    err = capsys.readouterr().err
    lines = [ln for ln in err.splitlines() if ln.startswith("luffy:")]
    assert len(lines) == 1 and "Traceback" not in err, err
    return lines[0]


def test_resolve_edits_config_installs_template_and_writes_card(base_dir, tmp_path, capsys):
    before = (base_dir / "config.json").read_bytes()
    out = tmp_path / "out"
    assert (
        _resolve(
            base_dir,
            out,
            "--set",
            "rope_parameters.rope_theta=40000",
            "--set",
            "max_position_embeddings=1024",
            "--chat-template",
            "luffy_think",
        )
        == 0
    )
    assert (base_dir / "config.json").read_bytes() == before  # the base folder is untouched

    cfg = json.loads((out / "config.json").read_text())
    assert (cfg["rope_parameters"]["rope_theta"], cfg["max_position_embeddings"]) == (40000, 1024)
    assert cfg["hidden_size"] == 64  # other keys kept

    tok = AutoTokenizer.from_pretrained(out)
    text = tok.apply_chat_template(
        [{"role": "user", "content": "What is 2+2?"}], add_generation_prompt=True, tokenize=False
    )
    assert text == LUFFY_SYSTEM_PROMPT + "\nUser: This is the problem:\nWhat is 2+2?\nAssistant: <think>\n"
    template = get_chat_template("luffy_think")
    assert (out / "chat_template.jinja").read_text() == template
    assert json.loads((out / "tokenizer_config.json").read_text())["chat_template"] == template

    model = AutoModelForCausalLM.from_pretrained(out)
    assert model.config.max_position_embeddings == 1024
    assert model.config.rope_parameters["rope_theta"] == 40000
    w_out, w_in = load_file(out / "model.safetensors"), load_file(base_dir / "model.safetensors")
    assert w_out.keys() == w_in.keys() and all(torch.equal(w_out[k], w_in[k]) for k in w_in)

    card = json.loads((out / "model_card.json").read_text())
    assert json.loads(capsys.readouterr().out) == {k: v for k, v in card.items() if k != "files"}
    assert (card["base"], card["base_source"], card["chat_template"]) == (
        str(base_dir),
        "local",
        "luffy_think",
    )
    assert card["config_edits"] == {
        "rope_parameters.rope_theta": {"before": 10000.0, "after": 40000},
        "max_position_embeddings": {"before": 512, "after": 1024},
    }
    assert card["config_sha256"] == hashlib.sha256((out / "config.json").read_bytes()).hexdigest()
    assert card["files"] == sorted(p.name for p in out.iterdir() if p.name != "model_card.json")
    assert {"model.safetensors", "config.json", "tokenizer.json", "chat_template.jinja"} <= set(card["files"])


def test_hub_layout_top_level_rope_theta_takes_effect(base_dir, tmp_path):
    """Qwen2.5-Math-7B's config.json has a top-level rope_theta and no rope_parameters (method §8 edit)."""

    def legacy(cfg):
        del cfg["rope_parameters"]
        cfg["rope_theta"] = 10000.0

    base = _copy(base_dir, tmp_path, legacy)
    out = tmp_path / "out"
    assert _resolve(base, out, "--set", "rope_theta=40000", "--set", "max_position_embeddings=16384") == 0
    cfg = json.loads((out / "config.json").read_text())
    assert (cfg["rope_theta"], cfg["max_position_embeddings"]) == (40000, 16384)
    loaded = AutoConfig.from_pretrained(out)
    assert (loaded.rope_parameters["rope_theta"], loaded.max_position_embeddings) == (40000, 16384)
    card = json.loads((out / "model_card.json").read_text())
    assert card["chat_template"] is None and card["config_edits"]["rope_theta"] == {
        "before": 10000.0,
        "after": 40000,
    }


def test_shadowed_top_level_rope_theta_is_an_error(base_dir, tmp_path, capsys):
    """With both keys, transformers reads rope_parameters: editing only rope_theta would do nothing."""
    base = _copy(base_dir, tmp_path, lambda cfg: cfg.update(rope_theta=10000.0))
    assert _resolve(base, tmp_path / "out", "--set", "rope_theta=40000") == 2
    line = _error_line(capsys)
    assert line.startswith(
        "luffy: error: --set rope_theta=40000: written to config.json, but transformers reads"
    )
    assert not (tmp_path / "out" / "model_card.json").exists()


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (["--set", "rope_thetaa=1"], "--set rope_thetaa: {cfg} has no key 'rope_thetaa' at the top level"),
        (
            ["--set", "rope_parameters.factor=2"],
            "--set rope_parameters.factor: {cfg} has no key 'factor' at rope_parameters",
        ),
        (["--set", "rope_theta"], "--set 'rope_theta': expected KEY=VALUE"),
        (
            ["--chat-template", "nope"],
            "--chat-template 'nope': unknown; known: ['luffy_think', 'tiny_think']",
        ),
    ],
)
def test_bad_arguments_exit_2_with_one_line(base_dir, tmp_path, capsys, args, expected):
    out = tmp_path / "out"
    out.mkdir()
    (out / "model_card.json").write_text("{}")  # stale from an earlier run
    assert _resolve(base_dir, out, *args) == 2
    assert _error_line(capsys).startswith("luffy: error: " + expected.format(cfg=base_dir / "config.json"))
    assert not (out / "config.json").exists()  # checked before copying anything


def test_missing_folder_exits_2(tmp_path, capsys):
    assert _resolve(tmp_path / "nope", tmp_path / "out") == 2
    assert (
        _error_line(capsys)
        == f"luffy: error: {tmp_path / 'nope'}: no such model folder (and not a Hugging Face Hub id)"
    )


def test_folder_without_config_exits_2(tmp_path, capsys):
    (tmp_path / "empty").mkdir()
    assert _resolve(tmp_path / "empty", tmp_path / "out") == 2
    assert _error_line(capsys) == f"luffy: error: {tmp_path / 'empty'}: not a model folder (no config.json)"


def test_hub_id_is_downloaded_with_snapshot_download(base_dir, tmp_path, monkeypatch):
    import huggingface_hub

    calls = []

    def fake_download(repo_id, local_dir):
        calls.append(repo_id)
        shutil.copytree(base_dir, local_dir, dirs_exist_ok=True)
        (local_dir / ".cache").mkdir()
        (local_dir / ".cache" / "bookkeeping").write_text("x")
        return str(local_dir)

    monkeypatch.setattr(huggingface_hub, "snapshot_download", fake_download)
    out = tmp_path / "out"
    assert _resolve("Qwen/Qwen2.5-Math-7B", out, "--set", "max_position_embeddings=16384") == 0
    assert calls == ["Qwen/Qwen2.5-Math-7B"]
    card = json.loads((out / "model_card.json").read_text())
    assert (card["base"], card["base_source"]) == ("Qwen/Qwen2.5-Math-7B", "hub")
    assert not any(f.startswith(".cache") for f in card["files"])


def test_hub_failure_is_one_line(tmp_path, monkeypatch, capsys):
    import huggingface_hub

    def offline(repo_id, local_dir):
        raise OSError("We couldn't connect to 'https://huggingface.co'\nCheck your connection.")

    monkeypatch.setattr(huggingface_hub, "snapshot_download", offline)
    assert _resolve("Qwen/Qwen2.5-Math-7B", tmp_path / "out") == 2
    assert _error_line(capsys).startswith(
        "luffy: error: Qwen/Qwen2.5-Math-7B: download from the Hugging Face Hub failed (OSError: We couldn't connect"
    )
