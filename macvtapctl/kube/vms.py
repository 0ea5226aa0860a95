"""Which VirtualMachines (and standalone VMIs) use macvtap bindings and networks."""

from __future__ import annotations

from typing import Any

from macvtapctl.dig import dig
from macvtapctl.errors import PreconditionError
from macvtapctl.kube.client import Kube
from macvtapctl.kube.resources import VIRTUAL_MACHINE, VIRTUAL_MACHINE_INSTANCE


def vm_spec(obj: dict[str, Any]) -> dict[str, Any]:
    """The VMI spec of a VM (spec.template.spec) or of a VMI (spec)."""
    if obj.get("kind") == "VirtualMachine":
        return dig(obj, "spec", "template", "spec") or {}
    return obj.get("spec") or {}


def all_vms(kube: Kube, namespace: str | None = None) -> list[dict[str, Any]]:
    """VMs plus VMIs that no VM owns, in one namespace or all; [] when KubeVirt's CRDs are absent."""
    try:
        vms = kube.list(VIRTUAL_MACHINE, namespace)
        vmis = kube.list(VIRTUAL_MACHINE_INSTANCE, namespace)
    except PreconditionError:
        return []
    standalone = [v for v in vmis if not any(r.get("kind") == "VirtualMachine"
                                             for r in dig(v, "metadata", "ownerReferences") or [])]
    return vms + standalone


def _ref(obj: dict[str, Any]) -> str:
    return f"{obj['metadata']['namespace']}/{obj['metadata']['name']}"


def vms_using_binding(kube: Kube, binding: str) -> list[str]:
    users = []
    for obj in all_vms(kube):
        for iface in dig(vm_spec(obj), "domain", "devices", "interfaces") or []:
            if (iface.get("binding") or {}).get("name") == binding:
                users.append(_ref(obj))
                break
    return users


def vms_using_network(kube: Kube, nad_namespace: str, nad_name: str) -> list[str]:
    """VMs whose multus networks point at this NAD (`name` resolves to the VM's namespace)."""
    users = []
    for obj in all_vms(kube):
        ns = obj["metadata"]["namespace"]
        for net in vm_spec(obj).get("networks") or []:
            ref = (net.get("multus") or {}).get("networkName")
            if not ref:
                continue
            rns, _, rname = ref.rpartition("/")
            if (rns or ns, rname) == (nad_namespace, nad_name):
                users.append(_ref(obj))
                break
    return users
