"""The CNI protocol for the macvtap plugin: parse env + stdin, validate, build results and errors. No I/O.

Spec versions 0.1.0 to 1.1.0 (upstream macvtap-cni speaks 0.1.0-0.4.0: a drop-in accepts all of them and
answers in the caller's version). Config keys read (as kubevirt/macvtap-cni): deviceID (top level, as Multus
injects it, or runtimeConfig.deviceID), mtu (0: leave the link's MTU), promiscMode, owner and group (-1: leave
/dev/tapN's owner or group as it is); the MAC comes from CNI_ARGS `MAC=` (what Multus sends) or runtimeConfig.mac,
in any form Go's net.ParseMAC reads for 6 bytes (`02:00:..`, `02-00-..`, `0200.0000.0001`). Unknown keys and
CNI_ARGS are tolerated.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from typing import Any

from macvtapctl.identity import QEMU_UID

SUPPORTED_VERSIONS = ("0.1.0", "0.2.0", "0.3.0", "0.3.1", "0.4.0", "1.0.0", "1.1.0")
COMMANDS = ("ADD", "DEL", "CHECK", "VERSION", "STATUS", "GC")
DEFAULT_OWNER = QEMU_UID  # qemu in KubeVirt's virt-launcher
MAX_DEVICE_ID = 256
MAX_CNI_ARGS = 8192

# Spec error codes.
E_INCOMPATIBLE_VERSION = 1
E_UNSUPPORTED_FIELD = 2
E_UNKNOWN_CONTAINER = 3
E_INVALID_ENV = 4
E_IO = 5
E_DECODE = 6
E_INVALID_CONFIG = 7
E_TRY_AGAIN = 11
E_NOT_AVAILABLE = 50
# Plugin-specific codes (>= 100), documented in docs/agent.md.
E_DEVICE_NOT_FOUND = 100
E_MTU_TOO_LARGE = 101
E_IFNAME_EXISTS = 102
E_TAP_NOT_FOUND = 103
E_NETLINK = 104
E_CHECK_FAILED = 105

_MAC_SEPARATED = re.compile(r"^[0-9a-fA-F]{2}([:-])[0-9a-fA-F]{2}(\1[0-9a-fA-F]{2}){4}\Z")
_MAC_DOTTED = re.compile(r"^[0-9a-fA-F]{4}\.[0-9a-fA-F]{4}\.[0-9a-fA-F]{4}\Z")
LEAVE = -1  # owner/group: keep /dev/tapN's (chown's convention, as upstream passes it to os.Chown)


class CniError(Exception):
    def __init__(self, code: int, msg: str, details: str = "") -> None:
        super().__init__(msg)
        self.code = code
        self.msg = msg
        self.details = details

    def to_json(self, version: str) -> dict[str, Any]:
        return {"cniVersion": version, "code": self.code, "msg": self.msg, "details": self.details}


@dataclass(frozen=True)
class Request:
    command: str
    container_id: str
    netns: str
    ifname: str
    args: dict[str, str]
    version: str
    config: dict[str, Any]
    device_id: str = ""
    mtu: int | None = None
    promisc: bool = False
    owner: int = DEFAULT_OWNER
    group: int = DEFAULT_OWNER
    mac: str | None = None
    prev_result: dict[str, Any] | None = None
    valid_attachments: list[dict[str, Any]] = field(default_factory=list)
    netns_override: bool = False


def interface_name_problem(name: str) -> str | None:
    from macvtapctl.validate import interface_name_problem as rule

    return rule(name)


def parse_cni_args(text: str) -> dict[str, str]:
    """`K=V;K2=V2` (CONVENTIONS.md). Malformed pairs are an invalid-env error naming CNI_ARGS."""
    if len(text) > MAX_CNI_ARGS:
        raise CniError(E_INVALID_ENV, "CNI_ARGS is too long", f"{len(text)} bytes")
    out: dict[str, str] = {}
    for pair in filter(None, text.split(";")):
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise CniError(E_INVALID_ENV, "CNI_ARGS must be K=V pairs separated by ';'", pair[:100])
        out[key] = value
    return out


def _version_of(config: dict[str, Any]) -> str:
    version = config.get("cniVersion", "")
    if not isinstance(version, str) or not version:
        raise CniError(E_INVALID_CONFIG, "network configuration has no cniVersion")
    if version not in SUPPORTED_VERSIONS:
        raise CniError(E_INCOMPATIBLE_VERSION, f"incompatible CNI version {version}",
                       f"supported: {', '.join(SUPPORTED_VERSIONS)}")
    return version


def version_at_least(version: str, minimum: str) -> bool:
    def key(v: str) -> tuple[int, ...]:
        return tuple(int(p) for p in v.split("."))

    return key(version) >= key(minimum)


def _int_field(config: dict[str, Any], key: str, lo: int, hi: int) -> int | None:
    value = config.get(key)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int):
        raise CniError(E_INVALID_CONFIG, f"{key} must be an integer", repr(value)[:100])
    if not lo <= value <= hi:
        raise CniError(E_INVALID_CONFIG, f"{key} must be from {lo} to {hi}", str(value))
    return value


def decode_config(stdin: bytes) -> dict[str, Any]:
    try:
        config = json.loads(stdin)
    except (ValueError, UnicodeDecodeError) as exc:
        raise CniError(E_DECODE, "cannot decode the network configuration", str(exc)[:200]) from None
    if not isinstance(config, dict):
        raise CniError(E_DECODE, "the network configuration must be a JSON object")
    return config


def parse_request(env: dict[str, str], stdin: bytes) -> Request:
    """Validate everything the runtime handed us; raise CniError naming the key on any problem."""
    command = env.get("CNI_COMMAND", "")
    if command not in COMMANDS:
        raise CniError(E_INVALID_ENV, "CNI_COMMAND must be one of " + ", ".join(COMMANDS), command[:50])
    if command == "VERSION":
        return Request(command, "", "", "", {}, "", {})
    config = decode_config(stdin)
    version = _version_of(config)
    if command == "CHECK" and not version_at_least(version, "0.4.0"):
        raise CniError(E_INCOMPATIBLE_VERSION, f"config version {version} does not allow CHECK")
    if command in ("STATUS", "GC") and not version_at_least(version, "1.1.0"):
        raise CniError(E_INCOMPATIBLE_VERSION, f"config version {version} does not allow {command}")
    needs = {"ADD": ("CNI_CONTAINERID", "CNI_NETNS", "CNI_IFNAME"), "CHECK": ("CNI_CONTAINERID", "CNI_NETNS",
             "CNI_IFNAME"), "DEL": ("CNI_CONTAINERID", "CNI_IFNAME")}.get(command, ())
    missing = [k for k in needs if not env.get(k)]
    if missing:
        raise CniError(E_INVALID_ENV, f"required environment variables missing: {', '.join(missing)}")
    ifname = env.get("CNI_IFNAME", "")
    if ifname:
        problem = interface_name_problem(ifname)
        if problem:
            raise CniError(E_INVALID_ENV, f"CNI_IFNAME {ifname[:40]!r} is invalid: an interface name {problem}")
    netns = env.get("CNI_NETNS", "")
    if len(netns) > 4096 or "\0" in netns:
        raise CniError(E_INVALID_ENV, "CNI_NETNS is not a usable path")
    args = parse_cni_args(env.get("CNI_ARGS", ""))
    runtime = config.get("runtimeConfig") or {}
    if not isinstance(runtime, dict):
        raise CniError(E_INVALID_CONFIG, "runtimeConfig must be an object")

    device_id = config.get("deviceID") or runtime.get("deviceID") or ""
    if not isinstance(device_id, str):
        raise CniError(E_INVALID_CONFIG, "deviceID must be a string", repr(device_id)[:100])
    if len(device_id) > MAX_DEVICE_ID:
        raise CniError(E_INVALID_CONFIG, f"deviceID is longer than {MAX_DEVICE_ID} characters")
    if command == "ADD" and not device_id:
        raise CniError(E_INVALID_CONFIG, "deviceID is required",
                       "Multus injects it from the device plugin allocation: does the pod request the NAD's "
                       "macvtap.network.kubevirt.io resource? Without Multus, set deviceID in the config")
    promisc = config.get("promiscMode", False)
    if not isinstance(promisc, bool):
        raise CniError(E_INVALID_CONFIG, "promiscMode must be true or false", repr(promisc)[:100])
    mac = args.get("MAC") or runtime.get("mac") or None
    if mac is not None:
        mac = normalize_mac(mac)
    prev = config.get("prevResult")
    if prev is not None and not isinstance(prev, dict):
        raise CniError(E_INVALID_CONFIG, "prevResult must be an object")
    valid = config.get("cni.dev/valid-attachments", config.get("cni.dev/attachments", [])) or []
    if not isinstance(valid, list):
        raise CniError(E_INVALID_CONFIG, "cni.dev/valid-attachments must be a list")
    return Request(
        command=command, container_id=env.get("CNI_CONTAINERID", ""), netns=netns, ifname=ifname, args=args,
        version=version, config=config, device_id=device_id,
        mtu=_mtu(config), promisc=promisc,
        owner=_owner(config, "owner"), group=_owner(config, "group"), mac=mac, prev_result=prev,
        valid_attachments=[v for v in valid if isinstance(v, dict)],
        netns_override=bool(env.get("CNI_NETNS_OVERRIDE")),
    )


def _owner(config: dict[str, Any], key: str) -> int:
    """-1 (LEAVE) keeps the device's owner or group, as chown(2) and upstream do; any other id must be valid."""
    value = _int_field(config, key, LEAVE, 2**32 - 2)
    return DEFAULT_OWNER if value is None else value


def _mtu(config: dict[str, Any]) -> int | None:
    """None (absent) and 0 (Go's zero value, as upstream reads it) both leave the link's MTU as it is."""
    if config.get("mtu") == 0 and not isinstance(config.get("mtu"), bool):
        return None
    return _int_field(config, "mtu", 68, 65535)


def normalize_mac(value: Any) -> str:
    """Lower-case colon form of a 6-byte unicast MAC given as `02:00:..`, `02-00-..` or `0200.0000.0001`."""
    if isinstance(value, str) and _MAC_DOTTED.match(value):
        digits = value.replace(".", "")
        value = ":".join(digits[i:i + 2] for i in range(0, 12, 2))
    if not isinstance(value, str) or not _MAC_SEPARATED.match(value):
        raise CniError(E_INVALID_CONFIG, "MAC must be six hex bytes (02:00:00:00:00:01, 02-00-00-00-00-01 or "
                       "0200.0000.0001)", repr(value)[:100])
    mac = value.replace("-", ":").lower()
    if int(mac[:2], 16) & 1:
        raise CniError(E_INVALID_CONFIG, "MAC must be a unicast address", mac)
    return mac


def version_result(stdin: bytes) -> dict[str, Any]:
    version = "1.1.0"
    if stdin.strip():
        try:
            cfg = json.loads(stdin)
            if isinstance(cfg, dict) and isinstance(cfg.get("cniVersion"), str):
                version = cfg["cniVersion"]
        except ValueError:
            pass
    return {"cniVersion": version, "supportedVersions": list(SUPPORTED_VERSIONS)}


def add_result(req: Request, mac: str, mtu: int) -> dict[str, Any]:
    """The ADD result in the caller's version: our interface, appended to prevResult when given.

    0.1.0/0.2.0 results have no interfaces (only ip4/ip6/dns): a macvtap without IPAM answers with DNS only,
    as upstream's library converts it."""
    if not version_at_least(req.version, "0.3.0"):
        return {"cniVersion": req.version, "dns": {}}
    iface: dict[str, Any] = {"name": req.ifname, "mac": mac, "sandbox": req.netns}
    if req.version == "1.1.0":
        iface["mtu"] = mtu
    if req.prev_result:
        result: dict[str, Any] = json.loads(json.dumps(req.prev_result))
        result["cniVersion"] = req.version
        result["interfaces"] = [*(result.get("interfaces") or []), iface]
        if not version_at_least(req.version, "1.0.0"):
            return result
        for ip in result.get("ips") or []:
            if isinstance(ip, dict):
                ip.pop("version", None)  # removed in 1.0.0
        return result
    return {"cniVersion": req.version, "interfaces": [iface]}


def expected_mac(req: Request) -> str | None:
    """What CHECK should find: the requested MAC, else the one ADD reported in prevResult."""
    if req.mac:
        return req.mac
    for iface in (req.prev_result or {}).get("interfaces") or []:
        if isinstance(iface, dict) and iface.get("name") == req.ifname and iface.get("sandbox"):
            mac = iface.get("mac")
            return str(mac).lower() if mac else None
    return None
