"""Reading people-written YAML into pydantic models, with errors that name the file and the field.

Why shared: datasets, training, placements and campaigns are all YAML written by people; every one of
them must fail the same way on a typo (``file: a.b.c: message``), never with a bare traceback.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from recsys.exceptions import ConfigError

__all__ = ["read_yaml", "validation_message"]


def read_yaml(path: str | Path, what: str) -> Any:
    """Parsed YAML of ``path``; ``ConfigError`` naming the file when it is missing or not YAML."""
    path = Path(path)
    try:
        return yaml.safe_load(path.read_text())
    except FileNotFoundError:
        raise ConfigError(f"{what} not found: {path}") from None
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: not valid YAML: {exc}") from None


def validation_message(source: str | Path, what: str, exc: ValidationError) -> str:
    """One line per invalid field, as dotted paths: ``placements.for_you.max_per_category: …``."""
    lines = [f"  {'.'.join(str(p) for p in err['loc']) or '<root>'}: {err['msg']}" for err in exc.errors()]
    return f"{source}: invalid {what}:\n" + "\n".join(lines)
