"""Finding the objects macvtapctl works on (the KubeVirt CR lives in an install-specific namespace)."""

from __future__ import annotations

from typing import Any

from macvtapctl.errors import PreconditionError
from macvtapctl.kube.client import Kube
from macvtapctl.kube.resources import KUBEVIRT, POD


def find_kubevirts(kube: Kube) -> list[dict[str, Any]]:
    """Every KubeVirt CR in any namespace; an empty list when the CRD is not installed."""
    try:
        return kube.list(KUBEVIRT)
    except PreconditionError:
        return []


def observed_version(kv: dict[str, Any]) -> str | None:
    value = (kv.get("status") or {}).get("observedKubeVirtVersion")
    return str(value) if value else None


def kubevirt_version_summary(kube: Kube) -> str | None:
    """The observed KubeVirt version, "unknown" when the CR has none yet, None when not installed."""
    kvs = find_kubevirts(kube)
    if not kvs:
        return None
    if len(kvs) == 1:
        return observed_version(kvs[0]) or "unknown"
    return ", ".join(
        f"{kv['metadata']['namespace']}/{kv['metadata']['name']}={observed_version(kv) or 'unknown'}"
        for kv in kvs
    )


def daemonset_pods(kube: Kube, ds: dict[str, Any], namespace: str) -> list[dict[str, Any]]:

    labels = ((ds.get("spec") or {}).get("selector") or {}).get("matchLabels") or {}
    if not labels:
        return []
    selector = ",".join(f"{k}={v}" for k, v in sorted(labels.items()))
    return kube.list(POD, namespace, label_selector=selector)
