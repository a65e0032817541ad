"""Checks of the Snakemake workflow config that its JSON schema cannot express.

The workflow (``Snakefile``) validates its config against ``workflow/schemas/config.schema.yaml``
(keys, types, enums, and the combinations of scale, base model and resources), then runs
``python -m luffy check-config -`` once, before the DAG is built, for what needs code:

* every experiment named in ``groups`` / ``figures`` and by ``init_from`` exists, and the
  ``init_from`` chains end;
* every experiment has ``config/experiments/<scale>/<name>.yaml``, and that file (with its
  ``inherit:`` chain, ``train_overrides`` and the experiment's ``set``) is a valid run config;
* the files and folders the config names exist (``eval.config``), the ``task`` section is a valid
  task config and the chat template is known;
* every ``train_split`` names a data file of the config's scale (``luffy.utils.datafiles``);
* a local base model folder is complete (config, tokenizer, every weight file its index lists);
* the data a run would read much later is there (:func:`data_problems`): at paper scale,
  ``paper_data.eval_dir`` holds the parquet of every benchmark of the suite read from a file. A dry
  run reports this as warnings (``data="warn"``) so the DAG can be listed before the data is staged.

The config is assumed to have passed the schema. The first problem raises :class:`ConfigError`
with one line naming the key or the file.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any, TextIO

import yaml
from pydantic import ValidationError

from .config import ConfigError, format_validation_error, load_run_config
from .data.synthetic import TaskConfig
from .data.templates import CHAT_TEMPLATES
from .utils.datafiles import DATA_FILES, TRAIN_SPLITS
from .utils.yamlfile import deep_merge, load_mapping, read_yaml

__all__ = ["check_workflow_config", "read_workflow_config"]


def read_workflow_config(paths: list[str], stdin: TextIO | None = None) -> dict[str, Any]:
    """The config files merged in order as Snakemake merges ``--configfile`` files (mappings key by
    key, everything else replaced); ``-`` reads one YAML mapping from ``stdin``."""
    config: dict[str, Any] = {}
    for path in paths:
        if path == "-":
            try:
                over = yaml.safe_load(stdin.read() if stdin else "") or {}
            except yaml.YAMLError as e:
                raise ConfigError(f"<stdin>: not valid YAML: {str(e).splitlines()[0]}") from None
            if not isinstance(over, dict):
                raise ConfigError(f"<stdin>: expected a mapping, got {type(over).__name__}")
        else:
            over = load_mapping(path)
        config = deep_merge(config, over)
    return config


def check_workflow_config(config: dict[str, Any], root: str | Path = ".", *, data: str = "error",
                          warn: Callable[[str], None] | None = None) -> str:
    """Raise :class:`ConfigError` on the first problem; return a one-line summary otherwise.

    Relative paths in the config (and the experiment files) are resolved against ``root``, the
    folder Snakemake runs in (the repository root). ``data="warn"`` passes the data problems to
    ``warn`` (one line each) instead of raising on the first.
    """
    root = Path(root)
    experiments = {name: spec or {} for name, spec in (config.get("experiments") or {}).items()}
    _check_names(config, experiments)
    _check_init_from(experiments)
    _check_experiment_files(config, experiments, root)
    _check_base_model(config, root)
    _check_train_splits(config, experiments)
    _check_other_sections(config, root)
    problems = data_problems(config, root)
    if problems and data == "error":
        raise ConfigError(problems[0])
    for line in problems:
        (warn or print)(line)
    return (f"config ok: scale {config.get('scale')}, {len(experiments)} experiments x "
            f"{len(config.get('seeds') or [])} seed(s)")


def _check_names(config: dict[str, Any], experiments: dict[str, dict]) -> None:
    known = sorted(experiments)
    for section in ("groups", "figures"):
        for key, names in (config.get(section) or {}).items():
            for name in names or []:
                if name not in experiments:
                    raise ConfigError(f"{section}.{key}: unknown experiment '{name}' (known: {known})")
    for name, spec in experiments.items():
        parent = spec.get("init_from")
        if parent is not None and parent not in experiments:
            raise ConfigError(f"experiments.{name}.init_from: unknown experiment '{parent}' (known: {known})")


def _check_init_from(experiments: dict[str, dict]) -> None:
    """Every ``init_from`` chain ends (a run cannot start from its own final model)."""
    for name in experiments:
        seen: list[str] = []
        cur: str | None = name
        while cur is not None:
            if cur in seen:
                raise ConfigError(f"experiments.{name}.init_from: cycle {' -> '.join([*seen, cur])}")
            seen.append(cur)
            cur = experiments[cur].get("init_from")


def _check_experiment_files(config: dict[str, Any], experiments: dict[str, dict], root: Path) -> None:
    folder = root / "config" / "experiments" / str(config.get("scale"))
    if not folder.is_dir():
        raise ConfigError(f"{folder}: folder not found (run the workflow from the repository root)")
    for name, spec in experiments.items():
        _check_experiment(config, folder, name, spec.get("set"), f"experiments.{name}", f"experiments.{name}")


def _check_experiment(config: dict[str, Any], folder: Path, name: str, extra: list[str] | None,
                      file_key: str, key: str) -> None:
    """``folder/<name>.yaml`` exists and loads as a run config with train_overrides and ``extra`` applied."""
    path = folder / f"{name}.yaml"
    if not path.is_file():
        there = sorted(p.stem for p in folder.glob("*.yaml"))
        raise ConfigError(f"{file_key}: no experiment file {path} (files there: {there})")
    overrides = [*(config.get("train_overrides") or []), *(extra or [])]
    try:
        load_run_config(path, overrides)
    except ConfigError as e:
        where = " (with train_overrides and the experiment's set applied)" if overrides else ""
        raise ConfigError(f"{key}: {e}{where}") from None


def _check_base_model(config: dict[str, Any], root: Path) -> None:
    base = config.get("base_model") or {}
    if base.get("source") == "local" and base.get("path"):  # its config.json is an input of the DAG
        missing = model_folder_gaps(root / base["path"])
        if missing:
            raise ConfigError(f"base_model.path '{base['path']}': incomplete model folder: {missing}")
    warmup = base.get("warmup")
    if warmup:
        folder = root / "config" / "experiments" / str(config.get("scale"))
        _check_experiment(config, folder, str(warmup.get("experiment")), warmup.get("set"),
                          "base_model.warmup.experiment", "base_model.warmup")
    template = base.get("chat_template")
    if template and template not in CHAT_TEMPLATES:
        raise ConfigError(f"base_model.chat_template: unknown template '{template}' "
                          f"(known: {sorted(CHAT_TEMPLATES)})")


def _check_train_splits(config: dict[str, Any], experiments: dict[str, dict]) -> None:
    """Every ``train_split`` (of an experiment or of the warm-up) names a data file of the config's scale."""
    scale = str(config.get("scale"))
    files = DATA_FILES.get(scale, {})
    have = [s for s in TRAIN_SPLITS if s in files]
    warmup = (config.get("base_model") or {}).get("warmup") or {}
    where = [("base_model.warmup", warmup)] if warmup else []
    for key, spec in [*where, *((f"experiments.{n}", s) for n, s in experiments.items())]:
        split = spec.get("train_split", "train")
        if split not in files:
            raise ConfigError(f"{key}.train_split: '{split}' is not a data split of scale '{scale}' "
                              f"(its training splits: {', '.join(have)})")


def _check_other_sections(config: dict[str, Any], root: Path) -> None:
    ev = (config.get("eval") or {}).get("config")
    if ev:
        if not (root / ev).is_file():
            raise ConfigError(f"eval.config '{ev}': file not found")
        try:
            read_yaml(root / ev)
        except ConfigError as e:
            raise ConfigError(f"eval.config: {e}") from None
    if config.get("scale") == "tiny":
        try:
            TaskConfig.model_validate(config.get("task") or {})
        except ValidationError as e:
            raise ConfigError(format_validation_error("task", e)) from None


def data_problems(config: dict[str, Any], root: Path) -> list[str]:
    """One line per missing piece of data the config's jobs would read (see the module docstring)."""
    return _paper_data_gaps(config, root) if config.get("scale") == "paper" else []


def model_folder_gaps(folder: Path) -> str | None:
    """What a Hugging Face model folder lacks (config, tokenizer, weights, an indexed shard), or None."""
    if not folder.is_dir():
        return "no such folder"
    if not (folder / "config.json").is_file():
        return "no config.json"
    if not any((folder / f).is_file() for f in ("tokenizer.json", "tokenizer.model", "vocab.json")):
        return "no tokenizer (tokenizer.json, tokenizer.model or vocab.json)"
    for index in [*folder.glob("*.safetensors.index.json"), *folder.glob("pytorch_model.bin.index.json")]:
        shards = set(json.loads(index.read_text(encoding="utf-8")).get("weight_map", {}).values())
        absent = sorted(s for s in shards if not (folder / s).is_file())
        if absent:
            return f"{len(absent)} of {len(shards)} weight shards listed in {index.name} are missing ({absent[0]}, ...)"
    if not [*folder.glob("*.safetensors"), *folder.glob("pytorch_model*.bin")]:
        return "no weights (*.safetensors or pytorch_model*.bin)"
    return None


def _paper_data_gaps(config: dict[str, Any], root: Path) -> list[str]:
    from .eval.benchmarks import REGISTRY, suite_benchmarks

    eval_dir = (config.get("paper_data") or {}).get("eval_dir")
    ev = config.get("eval") or {}
    if not eval_dir or ev.get("suite") != "paper":
        return []
    folder = root / eval_dir
    if not folder.is_dir():
        why = "folder not found (put the benchmark parquets of method §3.4 there: docs/cluster.md, Data)"
        return [f"paper_data.eval_dir '{eval_dir}': {why}"]
    hub = set()
    if ev.get("config"):
        benches = (read_yaml(root / ev["config"]) or {}).get("benchmarks") or {}
        hub = {name for name, spec in benches.items() if (spec or {}).get("source") == "hub"}
    return [f"paper_data.eval_dir '{eval_dir}': {REGISTRY[n].file} missing (benchmark {n})"
            for n in suite_benchmarks("paper") if n not in hub and not (folder / REGISTRY[n].file).is_file()]
