"""`install --via cnao`: enable macvtap in the Cluster Network Addons Operator's NetworkAddonsConfig."""

from __future__ import annotations

from typing import Any

from macvtapctl.dig import dig
from macvtapctl.kube.client import Kube
from macvtapctl.kube.options import DryRun
from macvtapctl.kube.resources import NETWORK_ADDONS_CONFIG
from macvtapctl.kube.retry import retry_on_conflict
from macvtapctl.ops import Reporter


def via_cnao(kube: Kube, report: Reporter, dry_run: DryRun, obj: dict[str, Any]) -> dict[str, Any]:
    """Create the NetworkAddonsConfig `cluster`, or merge-patch macvtap into the existing one."""

    existing = kube.get_or_none(NETWORK_ADDONS_CONFIG, "cluster")
    label = NETWORK_ADDONS_CONFIG.label("cluster")
    if existing is None:
        result: dict[str, Any] = kube.create(NETWORK_ADDONS_CONFIG, obj, dry_run=dry_run)
        report.status(label, "created", dry_run.suffix)
        return result
    want = obj["spec"]["macvtap"]

    def attempt() -> dict[str, Any]:
        nonlocal existing
        current = existing if existing is not None else kube.get(NETWORK_ADDONS_CONFIG, "cluster")
        existing = None  # a retry re-reads
        have = dig(current, "spec", "macvtap")
        if isinstance(have, dict) and all(have.get(k) == v for k, v in want.items()):
            report.status(label, "unchanged", dry_run.suffix)
            return dict(current)
        patch = {"metadata": {"resourceVersion": current["metadata"]["resourceVersion"]},
                 "spec": {"macvtap": want}}
        written: dict[str, Any] = kube.merge_patch(NETWORK_ADDONS_CONFIG, "cluster", patch, dry_run=dry_run)
        report.status(label, "configured", dry_run.suffix)
        return written

    return retry_on_conflict(attempt, what=label)
