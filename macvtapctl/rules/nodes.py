"""What a Node offers a workload: whether the scheduler may place pods on it, and how many devices of a macvtap
resource it advertises (its allocatable). One judge for doctor, status and `vm migrate --check`."""

from __future__ import annotations

from typing import Any

from macvtapctl import validate
from macvtapctl.dig import dig


def allocatable(node: dict[str, Any], resource: str) -> int:
    """Devices of the macvtap resource `resource` (its short name) the node advertises; 0 when none."""
    return _count(dig(node, "status", "allocatable", f"{validate.RESOURCE_PREFIX}/{resource}"))


def advertised(node: dict[str, Any]) -> dict[str, int]:
    """Every macvtap resource in the node's allocatable (its short name), with the devices it advertises (0: listed,
    none to give: the kubelet keeps a gone plugin's resource at 0)."""
    prefix = validate.RESOURCE_PREFIX + "/"
    return {k[len(prefix):]: _count(v) for k, v in (dig(node, "status", "allocatable") or {}).items()
            if k.startswith(prefix)}


def _count(value: Any) -> int:
    text = str(value or "0")
    return int(text) if text.isdigit() else 0


def schedulable(node: dict[str, Any]) -> bool:
    """Not cordoned, and Ready (or no Ready condition reported yet)."""
    if dig(node, "spec", "unschedulable"):
        return False
    conds = dig(node, "status", "conditions") or []
    ready = [c for c in conds if c.get("type") == "Ready"]
    return not ready or ready[0].get("status") == "True"


def selected(node: dict[str, Any], selector: dict[str, str]) -> bool:
    """Whether the node's labels satisfy a pod's nodeSelector."""
    labels = dig(node, "metadata", "labels") or {}
    return all(labels.get(k) == v for k, v in selector.items())
