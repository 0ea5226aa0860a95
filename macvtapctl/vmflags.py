"""`vm create`'s flag rules: each flag's value read into what the VirtualMachine renderer takes
(manifests/vm.py), the rules across flags, and a batch's names. Every failure is one UsageError naming the flag,
the value and the rule. Pure: no I/O (reading the files a flag names is the command's, cli/vm.py)."""

from __future__ import annotations

import base64
import binascii
import ipaddress

from macvtapctl import validate
from macvtapctl.errors import UsageError
from macvtapctl.manifests.vm import (
    EVICTION_STRATEGIES,
    POD_NETWORK,
    RUN_STRATEGIES,
    AccessCredential,
    Disk,
    Matcher,
    Network,
    StaticIP,
    VMOptions,
)


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
    if opts.eviction_strategy is not None and opts.eviction_strategy not in EVICTION_STRATEGIES:
        raise UsageError(f'invalid --eviction-strategy "{opts.eviction_strategy}": must be one of '
                         f'{", ".join(EVICTION_STRATEGIES)}')
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


HOSTNAME_LABEL = "kubernetes.io/hostname"  # the kubelet's label naming its node; KubeVirt schedules by nodeSelector


def node_selector(node: str | None, selectors: list[str]) -> dict[str, str]:
    """--node NAME and --node-selector KEY=VALUE as the VMI's nodeSelector. A VMI has no nodeName: pinning is
    nodeSelector kubernetes.io/hostname, as the kubelet labels its node."""
    chosen = validate.parse_labels(selectors, "--node-selector")
    if node is not None:
        validate.check_dns_subdomain(node, "--node")
        pinned = chosen.get(HOSTNAME_LABEL)
        if pinned is not None and pinned != node:
            raise UsageError(f'--node "{node}" contradicts --node-selector {HOSTNAME_LABEL}={pinned}: no node has '
                             "both names")
        if len(node) > 63:
            raise UsageError(f'invalid --node "{node}": longer than 63 characters, which a '
                             f"{HOSTNAME_LABEL} label value cannot hold")
        chosen[HOSTNAME_LABEL] = node
    return chosen


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
