"""VirtualMachine renderer (virtctl `create vm` style): pod network with masquerade plus one macvtap
interface per network, container disk (or virtctl's volume flags), instance types and preferences, cloud-init
NoCloud through yamlout, access credentials; a `--count` batch's addresses and MACs. It renders VMOptions that
`vm create` read and checked (cli/vm.py CreateOptions, the rules in vmflags.py). Pure: no I/O."""

from __future__ import annotations

import dataclasses
import hashlib
import ipaddress
from dataclasses import dataclass, field
from typing import Any

from macvtapctl import validate, yamlout
from macvtapctl.errors import UsageError

DEFAULT_IMAGE = "quay.io/kubevirt/fedora-with-test-tooling-container-disk:devel"
# virtctl create vm's list. WaitAsReceiver is a migration target's state (KubeVirt admits it only with the
# DecentralizedLiveMigration gate), not one to create a VM in.
RUN_STRATEGIES = ("Always", "RerunOnFailure", "Manual", "Halted", "Once")
# What a node drain does to the VM (VMI spec.evictionStrategy); unset: the cluster's default (KubeVirt CR).
EVICTION_STRATEGIES = ("LiveMigrate", "LiveMigrateIfPossible", "External", "None")
POD_NETWORK = "default"


@dataclass(frozen=True)
class Network:
    name: str  # networks[].name and interfaces[].name
    nad: str  # multus networkName: NAD or namespace/NAD


@dataclass(frozen=True)
class StaticIP:
    address: ipaddress.IPv4Interface | ipaddress.IPv6Interface
    gateway: ipaddress.IPv4Address | ipaddress.IPv6Address | None = None


@dataclass(frozen=True)
class Matcher:
    """spec.instancetype / spec.preference."""
    kind: str
    name: str


@dataclass(frozen=True)
class Disk:
    """A volume and its disk, from virtctl's --volume-containerdisk / --volume-pvc / --volume-datasource."""
    name: str
    source: str  # image, claim name, or DataSource name
    kind: str  # "containerDisk", "persistentVolumeClaim" or "dataSource"
    namespace: str | None = None  # DataSource namespace
    size: str | None = None  # DataSource clone size
    boot_order: int | None = None


@dataclass(frozen=True)
class AccessCredential:
    """virtctl's --access-cred type:ssh|password,src:SECRET[,method:ga|nocloud][,user:USER]."""
    type: str  # "ssh" or "password"
    secret: str
    method: str  # "ga" or "nocloud"
    users: tuple[str, ...] = ()


@dataclass
class VMOptions:
    networks: list[Network] = field(default_factory=list)
    binding: str = "macvtap"
    namespace: str | None = None  # set on the object only when given
    memory: str | None = "1Gi"  # None with an instance type (it sets the memory)
    cpu: int | None = 1
    image: str | None = DEFAULT_IMAGE  # None: no default container disk (virtctl's volume flags instead)
    instancetype: Matcher | None = None
    preference: Matcher | None = None
    disks: list[Disk] = field(default_factory=list)
    termination_grace_period: int | None = None
    access_credentials: list[AccessCredential] = field(default_factory=list)
    cloud_init: str = "nocloud"  # or "none"
    ga_manage_ssh: bool = False
    user_data_b64: str | None = None  # virtctl's --cloud-init-user-data: used as given
    network_data_b64: str | None = None  # virtctl's --cloud-init-network-data: used as given
    run_strategy: str = "Always"
    eviction_strategy: str | None = None
    user: str | None = None
    password: str | None = None
    ssh_keys: list[str] = field(default_factory=list)
    ips: dict[str, StaticIP] = field(default_factory=dict)
    macs: dict[str, str] = field(default_factory=dict)
    auto_mac: bool = False
    pod_network: bool = True
    network_data: bool = True
    labels: dict[str, str] = field(default_factory=dict)
    node_selector: dict[str, str] = field(default_factory=dict)  # the VMI's nodeSelector (--node, --node-selector)


def offset_ip(static: StaticIP, i: int, net: str) -> StaticIP:
    """The i-th VM's address of a `--count` batch: the given one plus i, inside its subnet."""
    if i == 0:
        return static
    address = static.address.ip + i
    network = static.address.network
    last_usable = int(network.broadcast_address) - (1 if network.version == 4 and network.prefixlen < 31 else 0)
    if int(address) > last_usable or address == static.gateway:
        why = "is the gateway" if address == static.gateway else f"runs past the end of {network}"
        raise UsageError(f"--ip {net}={static.address} with this --count: VM {i + 1}'s address {address} {why}; "
                         "start lower or use a larger subnet")
    return StaticIP(ipaddress.ip_interface(f"{address}/{network.prefixlen}"), static.gateway)


def offset_mac(mac: str, i: int, net: str) -> str:
    """The i-th VM's MAC of a `--count` batch: the given one plus i, same first three bytes."""
    if i == 0:
        return mac
    value = int(mac.replace(":", ""), 16) + i
    if value >> 24 != int(mac.replace(":", ""), 16) >> 24:
        raise UsageError(f"--mac {net}={mac} with this --count: VM {i + 1}'s MAC would change the first three "
                         "bytes; start lower")
    raw = f"{value:012x}"
    return ":".join(raw[k:k + 2] for k in range(0, 12, 2))


def batch(opts: VMOptions, count: int) -> list[VMOptions]:
    """Options per VM of a `--count` batch: explicit --ip and --mac advance by one per VM (never shared)."""
    if count > 1:
        named = [d.name for d in opts.disks if d.kind == "dataSource" and not d.name.startswith("datasource-")]
        if named:
            raise UsageError(f"--volume-datasource name:{named[0]} with --count {count}: every VM would clone into "
                             "the same DataVolume; leave name out (each VM gets its own)")
    out = []
    for i in range(count):
        if not opts.ips and not opts.macs:
            out.append(opts)
            continue
        out.append(dataclasses.replace(
            opts, ips={n: offset_ip(s, i, n) for n, s in opts.ips.items()},
            macs={n: offset_mac(m, i, n) for n, m in opts.macs.items()}))
    return out


def derived_mac(namespace: str, vm: str, network: str) -> str:
    """A stable, locally administered unicast MAC for namespace/vm/network: same inputs, same MAC."""
    digest = hashlib.sha256(f"{namespace}/{vm}/{network}".encode()).digest()
    first = (digest[0] & 0xFC) | 0x02  # clear multicast bit, set locally-administered bit
    return ":".join(f"{b:02x}" for b in (first, *digest[1:6]))


def macs_for(opts: VMOptions, namespace: str, vm: str) -> dict[str, str]:
    """MAC per network name: explicit ones, derived ones with --mac auto or where --ip needs one to match."""
    macs = dict(opts.macs)
    for net in opts.networks:
        if net.name not in macs and (opts.auto_mac or (net.name in opts.ips and opts.network_data)):
            macs[net.name] = derived_mac(namespace, vm, net.name)
    return macs


def _network_data(opts: VMOptions, macs: dict[str, str], pod_mac: str | None) -> dict[str, Any] | None:
    """cloud-init network config v2: DHCP (or static) on each macvtap NIC, matched by MAC when known."""
    if not opts.network_data or not opts.networks:
        return None
    ethernets: dict[str, Any] = {}
    if not macs:
        # No MAC to tell NICs apart: DHCP on every NIC (the pod network answers DHCP too).
        ethernets["all"] = {"match": {"name": "e*"}, "dhcp4": True}
        return {"version": 2, "ethernets": ethernets}
    if pod_mac:
        ethernets[POD_NETWORK] = {"match": {"macaddress": pod_mac}, "dhcp4": True}
    for net in opts.networks:
        mac = macs.get(net.name)
        if mac is None:
            continue
        entry: dict[str, Any] = {"match": {"macaddress": mac}}
        static = opts.ips.get(net.name)
        if static:
            entry["addresses"] = [str(static.address)]
            if static.gateway:
                route: dict[str, Any] = {"to": "default", "via": str(static.gateway)}
                if pod_mac:
                    route["metric"] = 200  # behind the pod network's default route, which DHCP sets
                entry["routes"] = [route]
        else:
            entry["dhcp4"] = True
        ethernets[net.name] = entry
    return {"version": 2, "ethernets": ethernets}


def _user_data(opts: VMOptions) -> str:
    """cloud-config through yamlout (every string that YAML could read as something else is quoted)."""
    doc: dict[str, Any] = {}
    if opts.user:
        doc["user"] = opts.user  # validated, and quoted where needed all the same
    if opts.password is not None:
        doc["password"] = opts.password
        doc["chpasswd"] = {"expire": False}
    if opts.ssh_keys:
        doc["ssh_authorized_keys"] = list(opts.ssh_keys)
    if opts.ga_manage_ssh or any(c.type == "ssh" and c.method == "ga" for c in opts.access_credentials):
        # virtctl's --ga-manage-ssh (implied, as there, by an ssh credential over the guest agent): SELinux lets
        # the guest agent write authorized keys.
        doc["runcmd"] = [["setsebool", "-P", "virt_qemu_ga_manage_ssh", "on"]]
    return "#cloud-config\n" + (yamlout.dump(doc) if doc else "")


def _storage(name: str, opts: VMOptions, macs: dict[str, str],
             pod_mac: str | None) -> tuple[list[dict[str, Any]], list[dict[str, Any]], list[dict[str, Any]]]:
    """Disks, volumes and dataVolumeTemplates: the container disk, virtctl's volumes, then cloud-init."""
    disks: list[dict[str, Any]] = []
    volumes: list[dict[str, Any]] = []
    data_volumes: list[dict[str, Any]] = []
    if opts.image:
        disks.append({"name": "containerdisk", "disk": {"bus": "virtio"}})
        volumes.append({"name": "containerdisk", "containerDisk": {"image": opts.image}})
    for d in opts.disks:
        disk: dict[str, Any] = {"name": d.name, "disk": {"bus": "virtio"}}
        if d.boot_order is not None:
            disk["bootOrder"] = d.boot_order
        disks.append(disk)
        if d.kind == "containerDisk":
            volumes.append({"name": d.name, "containerDisk": {"image": d.source}})
        elif d.kind == "persistentVolumeClaim":
            volumes.append({"name": d.name, "persistentVolumeClaim": {"claimName": d.source}})
        else:
            # Each VM clones into a DataVolume of its own: named after the VM unless the user named it.
            dv_name = f"{name}-{d.name}" if d.name.startswith("datasource-") else d.name
            source_ref: dict[str, Any] = {"kind": "DataSource", "name": d.source}
            if d.namespace:
                source_ref["namespace"] = d.namespace
            storage: dict[str, Any] = {"resources": {"requests": {"storage": d.size}}} if d.size else {}
            data_volumes.append({"metadata": {"name": dv_name}, "spec": {"sourceRef": source_ref, "storage": storage}})
            volumes.append({"name": d.name, "dataVolume": {"name": dv_name}})
    if opts.cloud_init != "none":
        cloud_init: dict[str, Any] = {}
        if opts.user_data_b64 is not None:
            cloud_init["userDataBase64"] = opts.user_data_b64
        else:
            cloud_init["userData"] = _user_data(opts)
        if opts.network_data_b64 is not None:
            cloud_init["networkDataBase64"] = opts.network_data_b64
        else:
            network_data = _network_data(opts, macs, pod_mac)
            if network_data is not None:
                cloud_init["networkData"] = yamlout.dump(network_data)
        disks.append({"name": "cloudinitdisk", "disk": {"bus": "virtio"}})
        volumes.append({"name": "cloudinitdisk", "cloudInitNoCloud": cloud_init})
    return disks, volumes, data_volumes


def render(name: str, opts: VMOptions, *, default_namespace: str = "default") -> dict[str, Any]:
    """One VirtualMachine (kubevirt.io/v1) as a plain dict, keys in kubectl's usual order."""
    validate.check_dns_label(name, "VM name")
    namespace = opts.namespace or default_namespace
    macs = macs_for(opts, namespace, name)
    pod_mac = derived_mac(namespace, name, POD_NETWORK) if (macs and opts.pod_network and opts.network_data) else None
    interfaces: list[dict[str, Any]] = []
    networks: list[dict[str, Any]] = []
    if opts.pod_network:
        iface: dict[str, Any] = {"name": POD_NETWORK, "masquerade": {}}
        if pod_mac:
            iface["macAddress"] = pod_mac
        interfaces.append(iface)
        networks.append({"name": POD_NETWORK, "pod": {}})
    for net in opts.networks:
        iface = {"name": net.name, "binding": {"name": opts.binding}}
        if net.name in macs:
            iface["macAddress"] = macs[net.name]
        interfaces.append(iface)
        networks.append({"name": net.name, "multus": {"networkName": net.nad}})
    domain: dict[str, Any] = {}
    if opts.cpu is not None:
        domain["cpu"] = {"cores": opts.cpu}
    if opts.memory is not None:
        domain["memory"] = {"guest": opts.memory}
    disks, volumes, data_volumes = _storage(name, opts, macs, pod_mac)
    domain["devices"] = {"disks": disks, "interfaces": interfaces}
    labels = {"kubevirt.io/vm": name, **opts.labels}
    metadata: dict[str, Any] = {"name": name}
    if opts.namespace:
        metadata["namespace"] = opts.namespace
    if opts.labels:
        metadata["labels"] = dict(opts.labels)
    template_spec: dict[str, Any] = {"domain": domain, "networks": networks, "volumes": volumes}
    if opts.node_selector:
        template_spec["nodeSelector"] = dict(opts.node_selector)
    if opts.eviction_strategy is not None:
        template_spec["evictionStrategy"] = opts.eviction_strategy
    if opts.termination_grace_period is not None:
        template_spec["terminationGracePeriodSeconds"] = opts.termination_grace_period
    if opts.access_credentials:
        template_spec["accessCredentials"] = [_access_credential(c, opts.user) for c in opts.access_credentials]
    spec: dict[str, Any] = {"runStrategy": opts.run_strategy}
    if opts.instancetype:
        spec["instancetype"] = {"kind": opts.instancetype.kind, "name": opts.instancetype.name}
    if opts.preference:
        spec["preference"] = {"kind": opts.preference.kind, "name": opts.preference.name}
    if data_volumes:
        spec["dataVolumeTemplates"] = data_volumes
    spec["template"] = {"metadata": {"labels": labels}, "spec": template_spec}
    return {"apiVersion": "kubevirt.io/v1", "kind": "VirtualMachine", "metadata": metadata, "spec": spec}


def _access_credential(cred: AccessCredential, user: str | None) -> dict[str, Any]:
    secret = {"secret": {"secretName": cred.secret}}
    if cred.type == "password":
        return {"userPassword": {"source": secret, "propagationMethod": {"qemuGuestAgent": {}}}}
    if cred.method == "nocloud":
        method: dict[str, Any] = {"noCloud": {}}
    else:
        method = {"qemuGuestAgent": {"users": list(cred.users or ((user,) if user else ()))}}
    return {"sshPublicKey": {"source": secret, "propagationMethod": method}}
