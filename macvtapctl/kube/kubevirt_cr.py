"""Reading and writing the KubeVirt CR (and the HyperConverged CR that may own it)."""

from __future__ import annotations

from typing import Any

from macvtapctl.dig import dig
from macvtapctl.errors import PreconditionError
from macvtapctl.kube.client import Kube
from macvtapctl.kube.lookup import find_kubevirts
from macvtapctl.kube.resources import HYPERCONVERGED

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
