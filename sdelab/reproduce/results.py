"""What the experiments return: typed results (dataclasses), turned into JSON in one way."""

from __future__ import annotations

from dataclasses import asdict, fields, is_dataclass


def to_json(result) -> dict:
    """A result dataclass as plain dicts and lists, ready for ``json.dumps``; its ``examples`` (tensors kept for the
    figures) are left out."""
    if not is_dataclass(result):
        raise ValueError(f"result must be an experiment's result dataclass, got {type(result).__name__}")
    out = {}
    for f in fields(result):
        value = getattr(result, f.name)
        if f.name != "examples":
            out[f.name] = [asdict(v) for v in value] if isinstance(value, list) else value
    return out
