"""What a NetworkAttachmentDefinition says: the macvtap resource it requests, its CNI config, whether it is a
macvtap NAD, and whose it is to change. Pure; manifests/nad.py renders the ones macvtapctl writes."""

from __future__ import annotations

import json
from typing import Any

from macvtapctl import validate

RESOURCE_ANNOTATION = "k8s.v1.cni.cncf.io/resourceName"


def resource_of(nad: dict[str, Any]) -> str | None:
    """The macvtap resource name part (after the prefix) this NAD requests, if any."""
    value = ((nad.get("metadata") or {}).get("annotations") or {}).get(RESOURCE_ANNOTATION, "")
    prefix = validate.RESOURCE_PREFIX + "/"
    return value[len(prefix):] if isinstance(value, str) and value.startswith(prefix) else None


def config_of(nad: dict[str, Any]) -> dict[str, Any] | None:
    try:
        cfg = json.loads((nad.get("spec") or {}).get("config") or "")
    except ValueError:
        return None
    return cfg if isinstance(cfg, dict) else None


def is_macvtap(nad: dict[str, Any]) -> bool:
    cfg = config_of(nad)
    if cfg is None:
        return False
    if cfg.get("type") == "macvtap":
        return True
    plugins = cfg.get("plugins")
    return isinstance(plugins, list) and any(isinstance(p, dict) and p.get("type") == "macvtap" for p in plugins)


def managers(obj: dict[str, Any]) -> list[str]:
    """Who has written this object (metadata.managedFields[].manager), in order, without repeats."""
    seen: list[str] = []
    for entry in (obj.get("metadata") or {}).get("managedFields") or []:
        manager = entry.get("manager") if isinstance(entry, dict) else None
        if isinstance(manager, str) and manager not in seen:
            seen.append(manager)
    return seen


def ownership_problem(nad: dict[str, Any], field_manager: str) -> str | None:
    """Why this existing NAD is someone else's to change (None: a macvtap NAD macvtapctl manages)."""
    meta = nad.get("metadata") or {}
    label = f'NetworkAttachmentDefinition {meta.get("namespace")}/{meta.get("name")}'
    who = managers(nad)
    owners = f"written by {', '.join(who)}" if who else "with no recorded field manager"
    if not is_macvtap(nad):
        cfg = config_of(nad) or {}
        kind = cfg.get("type") or "no"
        return f"{label} exists and is not a macvtap NAD (type {kind!r}; {owners})"
    if field_manager not in who:
        return f"{label} exists and is not managed by macvtapctl ({owners})"
    return None


def same_content(a: dict[str, Any], b: dict[str, Any]) -> bool:
    """Equal for our purposes: the resource annotation and the parsed CNI config."""
    return resource_of(a) == resource_of(b) and config_of(a) == config_of(b)
