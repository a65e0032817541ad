"""Build the paper's base model folder from a hub model (method §8, §3.2): ``luffy resolve-model``.

``Elliott/Qwen2.5-Math-7B-16k-think`` is ``Qwen/Qwen2.5-Math-7B`` with two ``config.json`` edits
(``rope_theta`` 10000 -> 40000, ``max_position_embeddings`` 4096 -> 16384; no RoPE scaling) and a
chat template that supplies the system prompt and ends with ``"Assistant: <think>\\n"``.
:func:`resolve_model` reproduces it:

1. the base folder is copied (local ``--base``) or downloaded into ``out`` with
   ``huggingface_hub.snapshot_download`` (hub id);
2. ``config.json`` keys are replaced; a key must already exist (dotted keys reach into nested
   objects, e.g. ``rope_parameters.rope_theta``), so a typo cannot add a key that nothing reads.
   The edited folder is then loaded with ``AutoConfig`` and each edited value must be the one
   transformers sees (a top-level ``rope_theta`` is ignored when ``rope_parameters`` exists);
3. the named template of :mod:`luffy.data.templates` is written as ``chat_template.jinja`` (what
   transformers 5 reads first) and as ``tokenizer_config.json``'s ``chat_template`` (what older
   readers use), and checked by rendering a prompt with the reloaded tokenizer;
4. ``model_card.json`` is written last (base, edits before -> after, template, sha256 of
   ``config.json``, file list): its presence marks a complete folder.

Deviation: the reference's exact template text is not in its snapshot (method §3.2); ``luffy_think``
is this project's reconstruction of the rendered form.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import sys
from pathlib import Path
from typing import Any

import yaml

from luffy.config import ConfigError
from luffy.data.templates import CHAT_TEMPLATES, THINK_PREFIX, get_chat_template
from luffy.model.load import ModelLoadError, _resolve
from luffy.utils.files import atomic_write_json, atomic_write_text

CARD_FILE = "model_card.json"
SKIP_DIRS = {".cache", ".git"}  # snapshot_download's bookkeeping, VCS data
_MISSING = object()


def parse_edits(items: list[str]) -> dict[str, Any]:
    """``["key=value", ...]`` -> ``{key: value}`` with values parsed as YAML (``40000`` -> int)."""
    edits: dict[str, Any] = {}
    for item in items:
        key, sep, text = item.partition("=")
        key = key.strip()
        if not sep or not key:
            raise ConfigError(f"--set {item!r}: expected KEY=VALUE, e.g. --set rope_theta=40000")
        try:
            if not text.strip():
                raise ConfigError(f"--set {item!r}: empty value; expected KEY=VALUE")
            edits[key] = yaml.safe_load(text)
        except yaml.YAMLError as e:
            raise ConfigError(
                f"--set {item!r}: value is not valid YAML ({' '.join(str(e).split())})"
            ) from None
    return edits


def resolve_model(
    base: str | Path, out: str | Path, edits: dict[str, Any] | None = None, chat_template: str | None = None
) -> dict[str, Any]:
    """Write the resolved model folder ``out`` (see the module docstring); returns the model card."""
    edits = dict(edits or {})
    if chat_template is not None and chat_template not in CHAT_TEMPLATES:
        raise ConfigError(f"--chat-template {chat_template!r}: unknown; known: {sorted(CHAT_TEMPLATES)}")
    out = Path(out)
    source, local = _resolve(base)
    if local:
        _check_local_base(Path(source), out, edits)
    out.mkdir(parents=True, exist_ok=True)
    (out / CARD_FILE).unlink(missing_ok=True)  # a stale card must not vouch for a half-written folder
    log(f"{'copying' if local else 'downloading'} {source} into {out}")
    if local:
        shutil.copytree(source, out, dirs_exist_ok=True, ignore=shutil.ignore_patterns(*SKIP_DIRS, CARD_FILE))
    else:
        _download(source, out)
    config_path = out / "config.json"
    if not config_path.is_file():
        raise ModelLoadError(f"{base}: not a model folder (no config.json)")

    changes = edit_config(config_path, edits) if edits else {}
    if changes:
        _check_loaded_config(out, edits)
        log("config.json: " + ", ".join(f"{k} {c['before']!r} -> {c['after']!r}" for k, c in changes.items()))
    if chat_template is not None:
        install_chat_template(out, chat_template)
        log(f"chat template {chat_template!r} installed")

    card = {
        "spec": "§8",
        "base": str(base),
        "base_source": "local" if local else "hub",
        "config_edits": changes,
        "chat_template": chat_template,
        "chat_template_sha256": _sha256_text(get_chat_template(chat_template)) if chat_template else None,
        "config_sha256": _sha256_file(config_path),
        "files": sorted(
            str(p.relative_to(out))
            for p in out.rglob("*")
            if p.is_file() and p.name != CARD_FILE and not SKIP_DIRS & set(p.relative_to(out).parts)
        ),
    }
    atomic_write_json(out / CARD_FILE, card)
    return card


def edit_config(path: Path, edits: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """Replace existing keys of the JSON file ``path``; returns ``{key: {before, after}}``."""
    config = _read_json(path)
    changes: dict[str, dict[str, Any]] = {}
    for key, value in edits.items():
        parent, leaf = _locate(config, key, path)
        changes[key] = {"before": parent[leaf], "after": value}
        parent[leaf] = value
    atomic_write_json(path, config)
    return changes


def install_chat_template(folder: Path, name: str) -> None:
    """Install template ``name`` in ``folder``'s tokenizer files and check that it renders."""
    template = get_chat_template(name)
    tc_path = folder / "tokenizer_config.json"
    if not tc_path.is_file():
        raise ModelLoadError(f"{folder}: no tokenizer_config.json to install the chat template {name!r} into")
    tc = _read_json(tc_path)
    tc["chat_template"] = template
    atomic_write_json(tc_path, tc)
    atomic_write_text(folder / "chat_template.jinja", template)

    from transformers import AutoTokenizer

    try:
        tok = AutoTokenizer.from_pretrained(folder, local_files_only=True)
        text = tok.apply_chat_template(
            [{"role": "user", "content": "1+1"}], add_generation_prompt=True, tokenize=False
        )
    except Exception as e:  # noqa: BLE001 -- tokenizer/jinja errors come in many types; report one line
        raise ModelLoadError(
            f"{folder}: tokenizer fails with chat template {name!r} "
            f"({type(e).__name__}: {' '.join(str(e).split())[:300]})"
        ) from None
    if tok.chat_template != template or not text.endswith(THINK_PREFIX):
        raise ModelLoadError(
            f"{folder}: the reloaded tokenizer does not render chat template {name!r} "
            f"(prompt ends {text[-30:]!r}, expected {THINK_PREFIX!r})"
        )


# ------------------------------------------------------------------------------------- helpers


def _check_local_base(source: Path, out: Path, edits: dict[str, Any]) -> None:
    """Fail on a bad local base or an unknown key before copying many gigabytes."""
    if not (source / "config.json").is_file():
        raise ModelLoadError(f"{source}: not a model folder (no config.json)")
    if out.resolve().is_relative_to(source.resolve()):
        raise ConfigError(
            f"--out {out}: must lie outside --base {source} (the base folder is not edited in place)"
        )
    config = _read_json(source / "config.json")
    for key in edits:
        _locate(config, key, source / "config.json")


def _download(hub_id: str, out: Path) -> None:
    try:
        from huggingface_hub import snapshot_download

        snapshot_download(repo_id=hub_id, local_dir=out)
    except Exception as e:  # noqa: BLE001 -- network/auth/hub errors come in many types; report one line
        raise ModelLoadError(
            f"{hub_id}: download from the Hugging Face Hub failed ({type(e).__name__}: "
            f"{' '.join(str(e).split())[:300]}); pass a local folder as --base"
        ) from None


def _locate(config: dict[str, Any], key: str, path: Path) -> tuple[dict[str, Any], str]:
    """The object holding dotted ``key`` and its last segment; every segment must exist."""
    node: Any = config
    parts = key.split(".")
    for i, part in enumerate(parts):
        if not isinstance(node, dict) or part not in node:
            where = ".".join(parts[:i]) or "the top level"
            known = sorted(node) if isinstance(node, dict) else []
            raise ConfigError(
                f"--set {key}: {path} has no key {part!r} at {where} (resolve-model only edits "
                f"existing keys; present: {', '.join(known)})"
            )
        if i < len(parts) - 1:
            node = node[part]
    return node, parts[-1]


def _check_loaded_config(folder: Path, edits: dict[str, Any]) -> None:
    """Each edited value must be what ``AutoConfig`` reads back (method §8: the edit must take effect)."""
    from transformers import AutoConfig

    try:
        loaded = AutoConfig.from_pretrained(folder, local_files_only=True).to_dict()
    except Exception as e:  # noqa: BLE001 -- config classes raise many types; report one line
        raise ModelLoadError(
            f"{folder}/config.json: transformers cannot load the edited config "
            f"({type(e).__name__}: {' '.join(str(e).split())[:300]})"
        ) from None
    for key, want in edits.items():
        got = _effective(loaded, key)
        if got is not _MISSING and got != want:
            raise ConfigError(
                f"--set {key}={want!r}: written to config.json, but transformers reads {got!r} "
                f"(another key overrides it, e.g. rope_parameters.rope_theta; set that one)"
            )


def _effective(loaded: dict[str, Any], key: str) -> Any:
    node: Any = loaded
    for part in key.split("."):
        if not isinstance(node, dict) or part not in node:
            break
        node = node[part]
    else:
        return node
    if key == "rope_theta" and isinstance(loaded.get("rope_parameters"), dict):  # transformers >= 5 moves it
        return loaded["rope_parameters"].get("rope_theta", _MISSING)
    return _MISSING


def _read_json(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise ModelLoadError(f"{path}: cannot read ({' '.join(str(e).split())})") from None
    if not isinstance(data, dict):
        raise ModelLoadError(f"{path}: expected a JSON object, got {type(data).__name__}")
    return data


def _sha256_file(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _sha256_text(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def log(msg: str) -> None:
    print(f"resolve-model: {msg}", file=sys.stderr)
