"""`luffy train` in a Slurm job that was given GPUs refuses, in one line, a config that would train on
the CPU; a CPU job, or a config that trains on the GPUs, passes."""

import pytest
from support import TINY, tiny_overrides

from luffy.cli import main
from luffy.cli.train import refuse_cpu_training_on_gpus
from luffy.config import ConfigError, load_run_config


def _cfg(task_dir, model, **extra):
    return load_run_config(TINY / "luffy.yaml", tiny_overrides(task_dir, model, **extra))


@pytest.mark.parametrize("env", [{}, {"SLURM_GPUS_ON_NODE": "0"}, {"SLURM_JOB_GPUS": ""}])
def test_a_job_without_gpus_may_train_on_the_cpu(task_dir, base_model, env):
    refuse_cpu_training_on_gpus(_cfg(task_dir, base_model), env)


@pytest.mark.parametrize("env", [{"SLURM_JOB_GPUS": "0"}, {"SLURM_STEP_GPUS": "0,1"}, {"SLURM_GPUS_ON_NODE": "8"}])
def test_a_job_with_gpus_must_not_train_on_the_cpu(task_dir, base_model, env):
    with pytest.raises(ConfigError, match="this job was given GPUs .* resources.backend is local"):
        refuse_cpu_training_on_gpus(_cfg(task_dir, base_model), env)
    ray_cpu = _cfg(task_dir, base_model, **{"resources.backend": "ray", "resources.device": "cpu"})
    with pytest.raises(ConfigError, match="resources.device is cpu"):
        refuse_cpu_training_on_gpus(ray_cpu, env)
    on_gpus = _cfg(task_dir, base_model, **{"resources.backend": "ray", "resources.device": "cuda",
                                            "resources.workers_per_node": 2})
    refuse_cpu_training_on_gpus(on_gpus, env)


def test_the_cli_says_it_in_one_line_before_any_work(task_dir, base_model, tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("SLURM_JOB_GPUS", "0,1,2,3")
    args = ["train", "--config", str(TINY / "luffy.yaml"), "--out", str(tmp_path / "r")]
    for s in tiny_overrides(task_dir, base_model):
        args += ["--set", s]
    assert main(args) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "this job was given GPUs (SLURM_JOB_GPUS=0,1,2,3)" in err, err
    assert not (tmp_path / "r").exists()


def test_the_local_backend_trains_on_a_gpu_when_torch_sees_one(task_dir, base_model, monkeypatch):
    env = {"SLURM_JOB_GPUS": "0"}
    refuse_cpu_training_on_gpus(_cfg(task_dir, base_model, **{"resources.device": "cuda"}), env)
    import torch

    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    refuse_cpu_training_on_gpus(_cfg(task_dir, base_model), env)          # auto -> cuda
    with pytest.raises(ConfigError, match="resources.device is cpu"):
        refuse_cpu_training_on_gpus(_cfg(task_dir, base_model, **{"resources.device": "cpu"}), env)


def test_asking_for_cuda_without_a_gpu_is_one_error_before_any_model_loads(task_dir, base_model, tmp_path):
    import torch

    if torch.cuda.is_available():
        pytest.skip("this host has a CUDA GPU: the error is for hosts without one")
    from luffy.model.load import ModelLoadError
    from luffy.train import Trainer

    t = Trainer(_cfg(task_dir, base_model, **{"resources.device": "cuda"}), tmp_path / "r", progress=False)
    with pytest.raises(ModelLoadError, match="resources.device is cuda but torch sees no CUDA device"):
        t.setup()
    assert not hasattr(t, "model")
