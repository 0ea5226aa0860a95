"""Which pods hold macvtap devices, the one rule `status` (IN USE) and `doctor` (who uses a resource up) apply: any
pod (virt-launcher or not) bound to a node and not finished, by the macvtap units its containers' limits ask for
— what the kubelet allocates for it. A VMI is not counted by itself: its launcher pod is what holds the device."""

from __future__ import annotations

from typing import Any

from macvtapctl import validate
from macvtapctl.dig import dig

LIVE = ("Pending", "Running")  # a pod bound to a node in these phases holds what the kubelet allocated to it
# The LIST that gives these pods: finished ones never hold a device.
FIELD_SELECTOR = "status.phase!=Succeeded,status.phase!=Failed"


def units(pod: dict[str, Any]) -> dict[str, int]:
    """resource name (after the prefix) -> the units this pod's containers ask for."""
    prefix = validate.RESOURCE_PREFIX + "/"
    out: dict[str, int] = {}
    for c in dig(pod, "spec", "containers") or []:
        for key, value in ((c.get("resources") or {}).get("limits") or {}).items():
            if key.startswith(prefix) and str(value).isdigit():
                out[key[len(prefix):]] = out.get(key[len(prefix):], 0) + int(value)
    return out


def holders(pods: list[dict[str, Any]]) -> dict[tuple[str, str], list[str]]:
    """(node, resource) -> one "namespace/name" per unit held."""
    out: dict[tuple[str, str], list[str]] = {}
    for pod in pods:
        node = dig(pod, "spec", "nodeName")
        if not node or dig(pod, "status", "phase") not in LIVE:
            continue
        who = f"{pod['metadata'].get('namespace')}/{pod['metadata'].get('name')}"
        for res, n in units(pod).items():
            out.setdefault((str(node), res), []).extend([who] * n)
    return out
