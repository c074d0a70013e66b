"""JSON conversion of experiment configs, as ``spinup.utils.serialization_utils``."""

from __future__ import annotations

import json

__all__ = ["convert_json", "is_json_serializable", "dumps_config"]


def is_json_serializable(v) -> bool:
    """Return True if ``json.dumps(v)`` succeeds."""
    try:
        json.dumps(v)
        return True
    except (TypeError, ValueError, OverflowError, RecursionError):
        return False


def convert_json(obj):
    """Convert ``obj`` to a version which can be serialized with JSON. Never raises.

    JSON-serializable values pass through; dicts, tuples and lists are converted element-wise;
    functions and classes become their ``__name__`` (lambdas excepted); other objects with
    attributes become ``{str(obj): convert_json(obj.__dict__)}``; anything else ``str(obj)``.
    """
    if is_json_serializable(obj):
        return obj
    if isinstance(obj, dict):
        return {convert_json(k): convert_json(v) for k, v in obj.items()}
    if isinstance(obj, tuple):
        return tuple(convert_json(x) for x in obj)
    if isinstance(obj, list):
        return [convert_json(x) for x in obj]
    name = getattr(obj, "__name__", None)
    if isinstance(name, str) and "lambda" not in name:
        return convert_json(name)
    attrs = getattr(obj, "__dict__", None)
    if isinstance(attrs, dict) and attrs:
        return {str(obj): convert_json(attrs)}
    return str(obj)


def dumps_config(obj) -> str:
    """Serialize an already converted config the way Spinning Up writes ``config.json``."""
    return json.dumps(obj, separators=(",", ":\t"), indent=4, sort_keys=True)
