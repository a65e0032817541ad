"""YAML config files with ``inherit:`` chains -- the one reader of the library and the workflow.

``inherit: other.yaml`` (a path relative to the file) deep-merges the file over its parent: mappings
merge key by key, anything else (lists, scalars, a scalar replacing a mapping) is replaced. So an
ablation is a small diff of the paper setting. Only PyYAML is needed, so the Snakemake environment
imports this module by file path without installing the library.
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import yaml


class ConfigError(ValueError):
    """A configuration problem; the message names the file and key."""


def deep_merge(base: dict, over: dict) -> dict:
    """``over`` merged onto a copy of ``base`` (mappings key by key, everything else replaced)."""
    out = copy.deepcopy(base)
    for k, v in over.items():
        if isinstance(v, dict) and isinstance(out.get(k), dict):
            out[k] = deep_merge(out[k], v)
        else:
            out[k] = copy.deepcopy(v)
    return out


def load_mapping(path: str | Path) -> dict[str, Any]:
    """One YAML file's top-level mapping (``inherit`` not resolved); errors name the file."""
    p = Path(path)
    if not p.is_file():
        raise ConfigError(f"{p}: config file not found")
    try:
        data = yaml.safe_load(p.read_text(encoding="utf-8")) or {}
    except (yaml.YAMLError, UnicodeDecodeError) as e:
        raise ConfigError(f"{p}: not valid YAML: {str(e).splitlines()[0]}") from None
    if not isinstance(data, dict):
        raise ConfigError(f"{p}: expected a mapping at the top level, got {type(data).__name__}")
    return data


def inherit_chain(path: str | Path) -> list[Path]:
    """The files ``path`` reads, itself first, then its parent, grandparent, ... (cycles are errors)."""
    chain: list[Path] = []
    p: Path | None = Path(path)
    while p is not None:
        if p.resolve() in [q.resolve() for q in chain]:
            raise ConfigError(f"{chain[-1]}: inherit cycle through {p}")
        chain.append(p)
        parent = load_mapping(p).get("inherit")
        if parent is not None and not isinstance(parent, str):
            raise ConfigError(f"{p}: key 'inherit' must be a file path")
        p = p.parent / parent if parent is not None else None
    return chain


def read_yaml(path: str | Path) -> dict[str, Any]:
    """Read a YAML mapping with its ``inherit:`` chain resolved (the ``inherit`` key removed)."""
    data: dict[str, Any] = {}
    for p in reversed(inherit_chain(path)):
        over = load_mapping(p)
        over.pop("inherit", None)
        data = deep_merge(data, over)
    return data
