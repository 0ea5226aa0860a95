"""Did a write change anything? One rule for every apply macvtapctl makes (install's objects, `vm create
--apply`'s VMs): compare what an apply can change — every field but status and the server-kept metadata, plus
labels and annotations — before and after (or against a server dry run's answer; it does not bump
resourceVersion, so that cannot tell a no-op from a change). Pure.

NADs are compared by their meaning instead (manifests/nad.py same_content: the resource and the parsed CNI
config), since a NAD someone else wrote with the same config in other whitespace is theirs to keep."""

from __future__ import annotations

from typing import Any


def content(obj: dict[str, Any]) -> dict[str, Any]:
    meta = obj.get("metadata") or {}
    return {**{k: v for k, v in obj.items() if k not in ("metadata", "status")},
            "labels": meta.get("labels") or {}, "annotations": meta.get("annotations") or {}}


def unchanged(before: dict[str, Any] | None, after: dict[str, Any]) -> bool:
    """`after` (written, or a server dry run's answer) changes nothing `before` had."""
    return before is not None and content(before) == content(after)
