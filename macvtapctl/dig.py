"""Reading a field deep inside an API object whose shape nobody guarantees (other people write these objects)."""

from __future__ import annotations

from typing import Any


def dig(obj: Any, *path: str) -> Any:
    """obj[path[0]][path[1]]... or None when any step is missing or not a mapping."""
    for key in path:
        if not isinstance(obj, dict):
            return None
        obj = obj.get(key)
    return obj
