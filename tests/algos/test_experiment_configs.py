"""Every experiment YAML loads, and its loss resolves to the shaping and γ of the paper setting.

The expected shapings are those the experiments had before the shaping parameters moved inside
``loss.shaping`` (same f(p), same γ), so the move changed no experiment numerically.
"""

from pathlib import Path

import pytest
import torch

from luffy.algos import SHAPINGS
from luffy.config import ConfigError, load_run_config

EXPERIMENTS = Path(__file__).resolve().parents[2] / "config" / "experiments"

# experiment -> (shaping name, its parameters, on-policy ratio, PPO clip on)
LUFFY = ("luffy", {"gamma": 0.1})
EXPECTED = {
    "luffy": (*LUFFY, "ratio", False),
    "gamma_0.05": ("luffy", {"gamma": 0.05}, "ratio", False),
    "gamma_0.2": ("luffy", {"gamma": 0.2}, "ratio", False),
    "gamma_0.3": ("luffy", {"gamma": 0.3}, "ratio", False),
    "gamma_0.5": ("luffy", {"gamma": 0.5}, "ratio", False),
    "mixed_clip": ("identity", {}, "ratio", True),
    "mixed_shaping_clip": (*LUFFY, "ratio", True),
    "on_policy": (*LUFFY, "ratio", True),
    "on_policy_noclip": (*LUFFY, "ratio", False),
    "on_policy_shaping": (*LUFFY, "shaped", True),
    "rl_sft_loss": (*LUFFY, "ratio", False),
    "sft": (*LUFFY, "ratio", False),
    "sft_rl": (*LUFFY, "ratio", True),
}
FILES = sorted(EXPERIMENTS.glob("*/*.yaml"))
CLOSED_FORM = {"luffy": lambda p, gamma: p / (p + gamma), "identity": lambda p: p}


def test_every_experiment_file_is_listed():
    assert FILES and {f.stem for f in FILES} == set(EXPECTED)
    assert {f.parent.name for f in FILES} == {"paper", "tiny"}


@pytest.mark.parametrize("path", FILES, ids=[f"{f.parent.name}/{f.stem}" for f in FILES])
def test_experiment_resolves_to_the_same_shaping_and_gamma(path):
    name, params, ratio, clipped = EXPECTED[path.stem]
    loss = load_run_config(path).loss_config()
    assert (loss.shaping.name, loss.shaping.kwargs()) == (name, params)
    assert (loss.on_policy_ratio, loss.clip is not None) == (ratio, clipped)
    p = torch.linspace(1e-4, 1.0, 257, dtype=torch.float64)
    assert torch.equal(loss.shape(p), CLOSED_FORM[name](p, **params))
    assert loss.shaping(p).equal(SHAPINGS.get(name)(p, **params))


def _write(folder: Path, name: str, text: str) -> Path:
    (folder / name).write_text(text)
    return folder / name


def test_a_bare_name_replaces_the_parents_shaping_mapping(tmp_path):
    _write(tmp_path, "parent.yaml", f"inherit: {EXPERIMENTS / 'tiny' / 'luffy.yaml'}\n")
    child = _write(tmp_path, "child.yaml", "inherit: parent.yaml\nloss: {shaping: identity}\n")
    assert load_run_config(child).loss.shaping.model_dump() == {"name": "identity"}
    # a mapping merges key by key: gamma alone over the parent keeps name 'luffy'
    sweep = _write(tmp_path, "sweep.yaml", "inherit: parent.yaml\nloss: {shaping: {gamma: 0.3}}\n")
    assert load_run_config(sweep).loss.shaping.model_dump() == {"name": "luffy", "gamma": 0.3}


def test_a_mapping_of_another_shaping_inherits_gamma_and_fails_loudly(tmp_path):
    bad = _write(tmp_path, "bad.yaml", f"inherit: {EXPERIMENTS / 'tiny' / 'luffy.yaml'}\n"
                                       "loss: {shaping: {name: identity}}\n")
    with pytest.raises(ConfigError) as e:
        load_run_config(bad)
    assert str(e.value) == (f"{bad}: loss.shaping: shaping 'identity' takes no parameter 'gamma' "
                            "(it has no parameters)")


def test_flat_gamma_is_one_line_naming_the_key(tmp_path):
    bad = _write(tmp_path, "flat.yaml", f"inherit: {EXPERIMENTS / 'tiny' / 'luffy.yaml'}\n"
                                        "loss: {shaping: identity, gamma: 0.5}\n")
    with pytest.raises(ConfigError) as e:
        load_run_config(bad)
    assert str(e.value).startswith(f"{bad}: loss: unknown key 'gamma': shaping parameters go inside 'shaping'")
    assert "\n" not in str(e.value)


def test_gamma_override_from_the_command_line():
    cfg = load_run_config(EXPERIMENTS / "tiny" / "luffy.yaml", ["loss.shaping.gamma=0.3"])
    assert cfg.loss.shaping.kwargs() == {"gamma": 0.3}
    cfg = load_run_config(EXPERIMENTS / "tiny" / "luffy.yaml", ["loss.shaping=identity"])
    assert cfg.loss.shaping.name == "identity"
