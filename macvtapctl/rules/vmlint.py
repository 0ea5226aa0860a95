"""Lint rules for VMs on macvtap: pure functions over a VM and what the cluster holds (no I/O).

Used by `vm check` and, before anything is written, by `vm create`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from macvtapctl import validate
from macvtapctl.dig import dig
from macvtapctl.errors import UsageError
from macvtapctl.rules import dpconfig, kubevirt
from macvtapctl.rules import nad as nadr

ERROR = "error"
WARNING = "warning"


@dataclass(frozen=True)
class Finding:
    severity: str
    check: str
    field: str
    message: str


@dataclass
class Facts:
    """What the checks need to know about the cluster. None means unknown (not checked)."""

    bindings: dict[str, Any] | None = None  # registered binding name -> its config
    nads: dict[tuple[str, str], dict[str, Any]] | None = None  # (namespace, name) -> NAD
    exposed: dpconfig.Config | None = None
    macs: dict[tuple[str, str], dict[str, str]] = field(default_factory=dict)  # NAD -> {mac: "ns/vm"}


def vmi_spec(vm: dict[str, Any]) -> dict[str, Any]:
    if vm.get("kind") == "VirtualMachineInstance":
        return vm.get("spec") or {}
    return dig(vm, "spec", "template", "spec") or {}


def _prefix(vm: dict[str, Any]) -> str:
    return "spec" if vm.get("kind") == "VirtualMachineInstance" else "spec.template.spec"


def nad_ref(network_name: str, vm_namespace: str) -> tuple[str, str]:
    ns, _, name = network_name.rpartition("/")
    return (ns or vm_namespace, name)


def is_macvtap_interface(iface: dict[str, Any], facts: Facts) -> bool:
    if "macvtap" in iface:
        return True
    binding = (iface.get("binding") or {}).get("name")
    if not binding:
        return False
    if facts.bindings is not None and binding in facts.bindings:
        return kubevirt.is_macvtap_binding(facts.bindings[binding])
    return bool(binding == kubevirt.DEFAULT_BINDING)


def uses_macvtap(vm: dict[str, Any], facts: Facts) -> bool:
    spec = vmi_spec(vm)
    ifaces = dig(spec, "domain", "devices", "interfaces") or []
    if any(is_macvtap_interface(i, facts) for i in ifaces):
        return True
    ns = vm.get("metadata", {}).get("namespace", "default")
    for net in spec.get("networks") or []:
        ref = (net.get("multus") or {}).get("networkName")
        if ref and facts.nads is not None:
            nad = facts.nads.get(nad_ref(ref, ns))
            if nad is not None and nadr.is_macvtap(nad):
                return True
    return False


def lint(vm: dict[str, Any], facts: Facts) -> list[Finding]:
    """Everything wrong with this VM's macvtap networking."""
    out: list[Finding] = []
    spec = vmi_spec(vm)
    base = _prefix(vm)
    ns = vm.get("metadata", {}).get("namespace") or "default"
    ref = f"{ns}/{vm.get('metadata', {}).get('name')}"
    ifaces = dig(spec, "domain", "devices", "interfaces") or []
    networks = {n.get("name"): n for n in spec.get("networks") or []}
    iface_names = {i.get("name") for i in ifaces}

    for net_name in networks:
        if net_name not in iface_names:
            out.append(Finding(ERROR, "unmatched-network", f"{base}.networks[{net_name}]",
                               f"network {net_name!r} has no interface of the same name"))
    out.extend(_same_mac_twice(ifaces, base))
    for idx, iface in enumerate(ifaces):
        f = f"{base}.domain.devices.interfaces[{idx}]"
        name = iface.get("name")
        if "macvtap" in iface:
            out.append(Finding(ERROR, "core-macvtap", f"{f}.macvtap",
                               f"interface {name!r} uses the core macvtap binding, discontinued in KubeVirt v1.3 "
                               "(rejected by its webhook); run: macvtapctl vm convert"))
        binding = (iface.get("binding") or {}).get("name")
        if binding and facts.bindings is not None and binding not in facts.bindings:
            # Any unregistered binding breaks the VM: virt-controller cannot render its pod.
            out.append(Finding(ERROR, "binding-not-registered", f"{f}.binding.name",
                               f"network binding {binding!r} is not registered in the KubeVirt CR (virt-controller "
                               "would fail: couldn't find configuration for network binding); run: "
                               f"macvtapctl enable --binding-name {binding}"))
        elif not is_macvtap_interface(iface, facts):
            continue
        if name is not None and validate.KUBEVIRT_IFACE_NAME.match(str(name)) is None:
            out.append(Finding(ERROR, "interface-name", f"{f}.name",
                               f"interface name {name!r} may only contain letters, digits, '-' and '_'"))
        net = networks.get(name)
        if net is None:
            out.append(Finding(ERROR, "unmatched-interface", f,
                               f"interface {name!r} has no network of the same name"))
        elif "pod" in net:
            out.append(Finding(ERROR, "pod-network", f"{base}.networks[{name}]",
                               f"macvtap interface {name!r} is on the pod network; macvtap is secondary-only: "
                               "use a multus network"))
        elif "multus" in net:
            out.extend(_lint_multus(net["multus"], name, ns, ref, base, facts))
        mac = iface.get("macAddress")
        if mac:
            out.extend(_lint_mac(str(mac), f"{f}.macAddress", net, ns, ref, facts))
        else:
            # Whatever the evictionStrategy: `virtctl migrate` and KubeVirt's LiveMigrate workload updates move a
            # VM without being asked by a drain.
            out.append(Finding(WARNING, "no-mac", f"{f}.macAddress",
                               f"interface {name!r} has no explicit macAddress: if the VM live-migrates, the macvtap "
                               "on the target node gets a new random MAC while the guest keeps its own, and the "
                               "guest receives nothing after the move; set one (macvtapctl vm create --mac auto)"))
    return out


def _same_mac_twice(ifaces: list[dict[str, Any]], base: str) -> list[Finding]:
    """One MAC on two interfaces of one VM: KubeVirt's admission (v1.7) lets it through; the guest gets two NICs
    that answer for one address."""
    out = []
    first: dict[str, Any] = {}
    for idx, iface in enumerate(ifaces):
        try:
            mac = validate.normalize_mac(str(iface.get("macAddress") or ""))
        except UsageError:
            continue  # absent or malformed: the per-interface check names it
        if mac in first:
            out.append(Finding(ERROR, "duplicate-mac", f"{base}.domain.devices.interfaces[{idx}].macAddress",
                               f"MAC {mac} is on interfaces {first[mac]!r} and {iface.get('name')!r} of this VM"))
        else:
            first[mac] = iface.get("name")
    return out


def _lint_multus(multus: dict[str, Any], name: Any, ns: str, ref: str, base: str,
                 facts: Facts) -> list[Finding]:
    out = []
    field_ = f"{base}.networks[{name}].multus"
    if multus.get("default"):
        out.append(Finding(ERROR, "default-network", f"{field_}.default",
                           f"network {name!r} is the default (primary) network; macvtap is secondary-only"))
    network_name = multus.get("networkName") or ""
    if not network_name:
        out.append(Finding(ERROR, "nad-missing", f"{field_}.networkName", "networkName is empty"))
        return out
    key = nad_ref(network_name, ns)
    if facts.nads is None:
        return out
    nad = facts.nads.get(key)
    if nad is None:
        hint = ""
        if "/" not in network_name and ("default", key[1]) in facts.nads and ns != "default":
            hint = f" (it exists in 'default': use networkName default/{key[1]})"
        out.append(Finding(ERROR, "nad-missing", f"{field_}.networkName",
                           f"NetworkAttachmentDefinition {key[0]}/{key[1]} does not exist{hint}"))
        return out
    if key[0] not in (ns, "default"):
        out.append(Finding(ERROR, "nad-namespace", f"{field_}.networkName",
                           f"NAD {key[0]}/{key[1]} is in another namespace; Multus allows only the VM's own "
                           "namespace or 'default'"))
    resource = nadr.resource_of(nad)
    if resource is None:
        out.append(Finding(ERROR, "nad-no-resource", f"{field_}.networkName",
                           f"NAD {key[0]}/{key[1]} has no macvtap.network.kubevirt.io resourceName annotation: no "
                           "device will be allocated"))
    elif facts.exposed is not None and not facts.exposed.expose_all and resource not in facts.exposed.names():
        out.append(Finding(ERROR, "resource-not-exposed", f"{field_}.networkName",
                           f"resource {resource!r} of NAD {key[0]}/{key[1]} is not exposed; run: macvtapctl "
                           f"expose LOWER_DEVICE --name {resource}"))
    return out


def _lint_mac(mac: str, field_: str, net: dict[str, Any] | None, ns: str, ref: str, facts: Facts) -> list[Finding]:
    try:
        norm = validate.check_unicast_mac(mac)
    except UsageError as exc:
        return [Finding(ERROR, "mac", field_, exc.message)]
    network_name = ((net or {}).get("multus") or {}).get("networkName")
    if not network_name:
        return []
    owner = facts.macs.get(nad_ref(network_name, ns), {}).get(norm)
    if owner and owner != ref:
        return [Finding(ERROR, "duplicate-mac", field_,
                        f"MAC {norm} is already used by {owner} on the same network")]
    return []


def record_macs(vm: dict[str, Any], facts: Facts) -> None:
    """Remember this VM's MACs per network, so later VMs (e.g. in a batch) cannot reuse them."""
    spec = vmi_spec(vm)
    ns = vm.get("metadata", {}).get("namespace") or "default"
    ref = f"{ns}/{vm.get('metadata', {}).get('name')}"
    networks = {n.get("name"): n for n in spec.get("networks") or []}
    for iface in dig(spec, "domain", "devices", "interfaces") or []:
        mac = iface.get("macAddress")
        network_name = ((networks.get(iface.get("name")) or {}).get("multus") or {}).get("networkName")
        if mac and network_name:
            try:
                norm = validate.normalize_mac(str(mac))
            except UsageError:
                continue
            facts.macs.setdefault(nad_ref(network_name, ns), {}).setdefault(norm, ref)
