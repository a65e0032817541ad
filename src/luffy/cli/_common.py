"""Helpers shared by sub-commands."""

from __future__ import annotations

import argparse


def section_config(a: argparse.Namespace, model_cls):
    """Validate ``--config`` (or its ``--section``) as ``model_cls``; errors name the file and key."""
    from pydantic import ValidationError

    from ..config import ConfigError, format_validation_error, read_yaml

    data = read_yaml(a.config) if a.config else {}
    if a.section:
        data = data.get(a.section, {})
    try:
        return model_cls.model_validate(data)
    except ValidationError as e:
        raise ConfigError(format_validation_error(f"{a.config}:{a.section or ''}", e)) from None
