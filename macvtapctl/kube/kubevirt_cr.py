"""Reading and writing the KubeVirt CR (and the HyperConverged CR that may own it)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from macvtapctl.dig import dig
from macvtapctl.errors import PreconditionError
from macvtapctl.kube.client import Kube
from macvtapctl.kube.lookup import find_kubevirts
from macvtapctl.kube.options import DryRun
from macvtapctl.kube.resources import HYPERCONVERGED, KUBEVIRT, Resource
from macvtapctl.kube.retry import retry_on_conflict
from macvtapctl.rules import kubevirt

HCO_MANAGERS = {"hco-operator", "hyperconverged-cluster-operator"}


def the_kubevirt(kube: Kube) -> dict[str, Any]:
    """The single KubeVirt CR; clear errors for none or several."""
    kvs = find_kubevirts(kube)
    if not kvs:
        raise PreconditionError("KubeVirt is not installed: no KubeVirt CR in any namespace "
                                "(install KubeVirt first: https://kubevirt.io/user-guide/)")
    if len(kvs) > 1:
        names = ", ".join(f"{k['metadata']['namespace']}/{k['metadata']['name']}" for k in kvs)
        raise PreconditionError(f"more than one KubeVirt CR found ({names}); KubeVirt supports exactly one: "
                                "remove the extra ones first")
    return kvs[0]


def hco_owner(kv: dict[str, Any]) -> str | None:
    """Name of the HyperConverged CR that manages this KubeVirt CR ("" when only its labels say so)."""
    for ref in dig(kv, "metadata", "ownerReferences") or []:
        if ref.get("kind") == "HyperConverged":
            return str(ref.get("name"))
    labels = dig(kv, "metadata", "labels") or {}
    if labels.get("app.kubernetes.io/managed-by") in HCO_MANAGERS:
        return ""
    return None


def get_hco(kube: Kube, name: str, namespace: str) -> dict[str, Any]:
    """The HyperConverged CR by name, or the only one in the namespace when the name is unknown."""
    if name:
        hco = kube.get_or_none(HYPERCONVERGED, name, namespace)
        if hco is not None:
            return hco
    else:
        try:
            found = kube.list(HYPERCONVERGED, namespace)
        except PreconditionError:
            found = []
        if len(found) == 1:
            return found[0]
    raise PreconditionError(
        f"the KubeVirt CR is managed by HyperConverged{' ' + repr(name) if name else ''}, which was not found "
        f'in namespace "{namespace}": HCO reverts direct edits, so configure the binding through HCO '
        "(spec.networkBinding)")


Planner = Callable[[dict[str, Any], dict[str, Any] | None], "kubevirt.Plan"]


@dataclass
class Update:
    """What `update` did: the object it planned against (the KubeVirt CR, or HyperConverged when HCO manages
    it), its plan, and the object as written (or as it would be, for a client dry run)."""

    resource: Resource
    planned: dict[str, Any]
    plan: kubevirt.Plan
    written: dict[str, Any]


def update(kube: Kube, planner: Planner, dry_run: DryRun) -> Update:
    """The one read-modify-write door of the KubeVirt CR and HyperConverged: read the KubeVirt CR (and the HCO
    that manages it, if any), let `planner(kv, hco)` (pure) return the merge patch for the object it belongs to
    (HCO's when there is one: it reverts direct edits), write it guarded by resourceVersion, and on a stale read
    (409) plan again from a fresh read."""

    def attempt() -> Update:
        kv = the_kubevirt(kube)
        owner = hco_owner(kv)
        hco = get_hco(kube, owner, kv["metadata"]["namespace"]) if owner is not None else None
        plan = planner(kv, hco)
        res, obj = (HYPERCONVERGED, hco) if hco is not None else (KUBEVIRT, kv)
        if not plan.changed:
            return Update(res, obj, plan, obj)
        if dry_run is DryRun.CLIENT:
            return Update(res, obj, plan, kubevirt.apply_plan(obj, plan))
        name, ns = obj["metadata"]["name"], obj["metadata"].get("namespace")
        patch = kubevirt.guarded(plan.patch, obj["metadata"]["resourceVersion"])
        return Update(res, obj, plan, kube.merge_patch(res, name, patch, ns, dry_run=dry_run))

    return retry_on_conflict(attempt, what="the KubeVirt CR")
