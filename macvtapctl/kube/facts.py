"""Gathering what the VM checks need from the cluster, in as few reads as possible."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from macvtapctl.dig import dig
from macvtapctl.errors import MacvtapctlError, PreconditionError
from macvtapctl.kube.client import Kube
from macvtapctl.kube.dpconfigmap import current_config
from macvtapctl.kube.kubevirt_cr import get_hco, hco_owner, the_kubevirt
from macvtapctl.kube.resources import NAD
from macvtapctl.kube.vms import all_vms
from macvtapctl.rules import vmlint

if TYPE_CHECKING:
    from macvtapctl.rules import vmlint


def registered_bindings(kube: Kube, kv: dict[str, Any] | None = None) -> dict[str, Any]:
    """Bindings of the KubeVirt CR (read unless given), plus those its HyperConverged owner will propagate."""
    if kv is None:
        kv = the_kubevirt(kube)
    found = dig(kv, "spec", "configuration", "network", "binding")
    bindings = dict(found) if isinstance(found, dict) else {}
    owner = hco_owner(kv)
    if owner is not None:
        # What HCO will propagate counts too (it may not have reconciled yet).
        try:
            hco = get_hco(kube, owner, kv["metadata"]["namespace"])
            hco_bindings = dig(hco, "spec", "networkBinding")
            bindings.update(hco_bindings if isinstance(hco_bindings, dict) else {})
        except MacvtapctlError:
            pass
    return bindings


def gather(kube: Kube, *, namespaces: set[str] | None = None, with_vm_macs: bool = True,
           vms: list[dict[str, Any]] | None = None) -> vmlint.Facts:
    """Bindings, NADs (in the given namespaces plus 'default'), the DP config and MACs in use (of `vms`, every
    VM and VMI of the cluster, when the caller listed them already: one LIST per kind, never two)."""

    facts = vmlint.Facts(bindings=registered_bindings(kube))
    nads: dict[tuple[str, str], dict[str, Any]] = {}
    try:
        if namespaces is None:
            found = kube.list(NAD)
        else:
            found = [n for ns in sorted(namespaces | {"default"}) for n in kube.list(NAD, ns)]
    except PreconditionError:
        found = []
    for n in found:
        nads[(n["metadata"]["namespace"], n["metadata"]["name"])] = n
    facts.nads = nads
    facts.exposed = current_config(kube)
    if with_vm_macs:
        for vm in all_vms(kube) if vms is None else vms:
            vmlint.record_macs(vm, facts)
    return facts
