"""VirtualMachine generator (virtctl `create vm` style): pod network with masquerade plus one macvtap
interface per network, container disk (or virtctl's volume flags), instance types and preferences, cloud-init
NoCloud, access credentials. Pure: no I/O."""

from __future__ import annotations

import base64
import binascii
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
    explicit: dict[str, bool] = field(default_factory=dict)  # which defaults the user set (flag -> given)
    user_data_b64: str | None = None  # virtctl's --cloud-init-user-data: used as given
    network_data_b64: str | None = None  # virtctl's --cloud-init-network-data: used as given
    run_strategy: str = "Always"
    user: str | None = None
    password: str | None = None
    ssh_keys: list[str] = field(default_factory=list)
    ips: dict[str, StaticIP] = field(default_factory=dict)
    macs: dict[str, str] = field(default_factory=dict)
    auto_mac: bool = False
    pod_network: bool = True
    network_data: bool = True
    labels: dict[str, str] = field(default_factory=dict)


def network_from_nad(ref: str) -> Network:
    """`--network NAD`, `--network ns/NAD` or `--network NAME=[ns/]NAD`."""
    name, sep, nad = ref.partition("=")
    if not sep:
        name, nad = "", ref
    ns, slash, nad_name = nad.rpartition("/")
    if slash:
        validate.check_dns_label(ns, "NAD namespace")
    validate.check_dns_subdomain(nad_name, "NAD name")
    net_name = name or nad_name.replace(".", "-")
    validate.check_vm_network_name(net_name)
    if net_name == POD_NETWORK:
        raise UsageError(f'invalid network name "{net_name}": it is reserved for the pod network; use '
                         f"--network NAME={nad}")
    return Network(net_name, nad)


def parse_ip(value: str) -> tuple[str, StaticIP]:
    """`NET=CIDR[,GATEWAY]`."""
    net, sep, rest = value.partition("=")
    if not sep or not net or not rest:
        raise UsageError(f'invalid --ip "{value}": expected NET=CIDR[,GATEWAY], e.g. dataplane=192.0.2.10/24,192.0.2.1')
    cidr, _, gw = rest.partition(",")
    try:
        address = ipaddress.ip_interface(cidr)
    except ValueError:
        raise UsageError(f'invalid --ip "{value}": "{cidr}" is not an address with a prefix length like '
                         "192.0.2.10/24") from None
    if "/" not in cidr:
        raise UsageError(f'invalid --ip "{value}": "{cidr}" needs a prefix length, e.g. /24')
    gateway = None
    if gw:
        try:
            gateway = ipaddress.ip_address(gw)
        except ValueError:
            raise UsageError(f'invalid --ip "{value}": gateway "{gw}" is not an IP address') from None
        if gateway.version != address.version or gateway not in address.network:
            raise UsageError(f'invalid --ip "{value}": gateway {gw} is not in {address.network}')
    return net, StaticIP(address, gateway)


def parse_mac(value: str) -> tuple[str, str]:
    """`NET=MAC`."""
    net, sep, mac = value.partition("=")
    if not sep or not net:
        raise UsageError(f'invalid --mac "{value}": expected NET=MAC or auto')
    return net, validate.check_unicast_mac(mac)


INSTANCETYPE_KINDS = {"virtualmachineinstancetype": "VirtualMachineInstancetype",
                      "virtualmachineclusterinstancetype": "VirtualMachineClusterInstancetype"}
PREFERENCE_KINDS = {"virtualmachinepreference": "VirtualMachinePreference",
                    "virtualmachineclusterpreference": "VirtualMachineClusterPreference"}


def parse_matcher(value: str, flag: str, kinds: dict[str, str]) -> Matcher:
    """virtctl's `[KIND/]NAME` for --instancetype and --preference; KIND defaults to the cluster-wide one."""
    kind, slash, name = value.rpartition("/")
    if slash and kind.lower() not in kinds:
        raise UsageError(f'invalid {flag} "{value}": kind "{kind}" must be one of {", ".join(kinds)}')
    validate.check_dns_subdomain(name, f"{flag} name")
    canonical = kinds[kind.lower()] if slash else next(v for v in kinds.values() if "Cluster" in v)
    return Matcher(canonical, name)


def parse_params(value: str, flag: str, allowed: tuple[str, ...]) -> dict[str, str]:
    """virtctl's parameter syntax `key:value,key:value` (a value may contain ':', e.g. an image tag)."""
    out: dict[str, str] = {}
    for part in value.split(","):
        key, sep, val = part.partition(":")
        if not sep or not key or not val:
            raise UsageError(f'invalid {flag} "{value}": expected key:value pairs separated by commas '
                             f"({', '.join(allowed)})")
        key = key.lower()
        if key not in allowed:
            raise UsageError(f'invalid {flag} "{value}": unknown parameter "{key}" (supported: {", ".join(allowed)})')
        if key in out:
            raise UsageError(f'invalid {flag} "{value}": parameter "{key}" given twice')
        out[key] = val
    if "src" in allowed and "src" not in out:
        raise UsageError(f'invalid {flag} "{value}": src must be specified')
    return out


def _boot_order(params: dict[str, str], flag: str, value: str) -> int | None:
    if "bootorder" not in params:
        return None
    text = params["bootorder"]
    if not text.isdigit() or int(text) < 1:
        raise UsageError(f'invalid {flag} "{value}": bootorder must be a positive integer')
    return int(text)


def parse_volume(value: str, flag: str, index: int) -> Disk:
    """--volume-containerdisk / --volume-pvc / --volume-datasource, as virtctl reads them."""
    if flag == "--volume-containerdisk":
        p = parse_params(value, flag, ("src", "name", "bootorder"))
        name = p.get("name") or f"containerdisk-{index}"
        disk = Disk(name, p["src"], "containerDisk", boot_order=_boot_order(p, flag, value))
    elif flag == "--volume-pvc":
        p = parse_params(value, flag, ("src", "name", "bootorder"))
        if "/" in p["src"]:
            raise UsageError(f'invalid {flag} "{value}": not allowed to specify the namespace of a PVC')
        validate.check_dns_subdomain(p["src"], f"{flag} src")
        disk = Disk(p.get("name") or p["src"], p["src"], "persistentVolumeClaim",
                    boot_order=_boot_order(p, flag, value))
    else:
        p = parse_params(value, flag, ("src", "name", "size", "bootorder"))
        ns, slash, src = p["src"].rpartition("/")
        if slash:
            validate.check_dns_label(ns, f"{flag} namespace")
        validate.check_dns_subdomain(src, f"{flag} src")
        if "size" in p:
            validate.check_quantity(p["size"], f"{flag} size")
        disk = Disk(p.get("name") or f"datasource-{index}", src, "dataSource", namespace=ns or None,
                    size=p.get("size"), boot_order=_boot_order(p, flag, value))
    validate.check_dns_label(disk.name, f"{flag} volume name")
    return disk


def parse_access_credential(value: str) -> AccessCredential:
    flag = "--access-cred"
    p = parse_params(value, flag, ("type", "src", "method", "user"))
    kind = p.get("type", "ssh").lower()
    method = p.get("method", "ga").lower()
    if "/" in p["src"]:
        raise UsageError(f'invalid {flag} "{value}": not allowed to specify the namespace of a secret')
    validate.check_dns_subdomain(p["src"], f"{flag} src")
    if kind == "ssh":
        if method not in ("ga", "nocloud"):
            raise UsageError(f'invalid {flag} "{value}": ssh method must be ga or nocloud (configdrive: not '
                             "supported, the generated cloud-init is NoCloud)")
        if method == "nocloud" and "user" in p:
            raise UsageError(f'invalid {flag} "{value}": user is only valid with method ga')
    elif kind == "password":
        if method != "ga":
            raise UsageError(f'invalid {flag} "{value}": password method must be ga')
        if "user" in p:
            raise UsageError(f'invalid {flag} "{value}": user is only valid with type ssh, method ga')
    else:
        raise UsageError(f'invalid {flag} "{value}": type must be ssh or password')
    users = (p["user"],) if "user" in p else ()
    for u in users:
        validate.check_linux_user(u)
    return AccessCredential(kind, p["src"], method, users)


def decode_b64(value: str, flag: str) -> str:
    """virtctl's --cloud-init-user-data/--cloud-init-network-data are base64; refuse what does not decode."""
    try:
        base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError):
        raise UsageError(f'invalid {flag}: the value is not valid base64 (encode the file: base64 -w0 FILE)') from None
    return value


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


def check_options(opts: VMOptions) -> None:
    """Cross-flag rules (each names the flag and the rule)."""
    validate.check_binding_name(opts.binding)
    names = [n.name for n in opts.networks]
    dupes = sorted({n for n in names if names.count(n) > 1})
    if dupes:
        raise UsageError(f"network name {dupes[0]!r} is used twice; name them with --network NAME=NAD")
    for flag, keyed in (("--ip", opts.ips), ("--mac", opts.macs)):
        for net in keyed:
            if net not in names:
                raise UsageError(f"{flag} names network {net!r}, which is not one of the --network values "
                                 f"({', '.join(names) or 'none'})")
    if opts.run_strategy not in RUN_STRATEGIES:
        raise UsageError(f'invalid --run-strategy "{opts.run_strategy}": must be one of {", ".join(RUN_STRATEGIES)}')
    if opts.cpu is not None and not 1 <= opts.cpu <= 512:
        raise UsageError(f"invalid --cpu {opts.cpu}: must be from 1 to 512")
    if opts.memory is not None:
        validate.check_quantity(opts.memory, "--memory")
    if opts.termination_grace_period is not None and opts.termination_grace_period < 0:
        raise UsageError(f"invalid --termination-grace-period {opts.termination_grace_period}: must be 0 or more")
    volumes = (["containerdisk"] if opts.image else []) + [d.name for d in opts.disks] + ["cloudinitdisk"]
    dupes = sorted({v for v in volumes if volumes.count(v) > 1})
    if dupes:
        raise UsageError(f"volume name {dupes[0]!r} is used twice; name volumes with the name: parameter")
    if opts.user_data_b64 is not None and (opts.user or opts.password is not None or opts.ssh_keys):
        raise UsageError("--cloud-init-user-data cannot be combined with --user, --password-file or --ssh-key: "
                         "the user data is used as given")
    if opts.network_data_b64 is not None and opts.ips:
        raise UsageError("--cloud-init-network-data cannot be combined with --ip: the network data is used as given")
    if opts.cloud_init == "none" and (opts.user_data_b64 or opts.network_data_b64 or opts.user or opts.ssh_keys
                                      or opts.password is not None or opts.ips):
        raise UsageError("--cloud-init none cannot be combined with flags that write cloud-init data")
    for cred in opts.access_credentials:
        if cred.type == "ssh" and cred.method == "ga" and not (cred.users or opts.user):
            raise UsageError(f"--access-cred src:{cred.secret}: method ga needs a user (--user or the user: "
                             "parameter)")
        if cred.method == "nocloud" and opts.cloud_init == "none":
            raise UsageError(f"--access-cred src:{cred.secret}: method nocloud needs cloud-init "
                             "(not --cloud-init none)")
    for key, value in opts.labels.items():
        validate.check_label(key, value)
    if not opts.networks and not opts.pod_network:
        raise UsageError("--no-pod-network needs at least one --network: the VM would have no NIC")
    if opts.user is not None:
        validate.check_linux_user(opts.user)


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


def names_for(name: str, count: int, template: str | None) -> list[str]:
    """`--count N --name-template web-{i}`: web-1 ... web-N (1-based). Without a template: NAME-{i}."""
    if count < 1 or count > 10000:
        raise UsageError(f"invalid --count {count}: must be from 1 to 10000")
    if count == 1 and template is None:
        return [name]
    tpl = template or f"{name}-{{i}}"
    if "{i}" not in tpl:
        raise UsageError(f'invalid --name-template "{tpl}": it must contain {{i}}')
    names = [tpl.replace("{i}", str(i)) for i in range(1, count + 1)]
    for n in names:
        validate.check_dns_label(n, "VM name")
    return names
