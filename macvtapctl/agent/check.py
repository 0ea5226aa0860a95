"""`macvtapctl agent check`: is this node ready for macvtap? Run on the node (or in the agent pod)."""

from __future__ import annotations

import os
import secrets
import stat
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from macvtapctl.agent.netlink import BlockingNetlink, Link
from macvtapctl.rules import dpconfig

OK, WARN, FAIL, SKIP = "ok", "warning", "error", "skipped"


@dataclass(frozen=True)
class Result:
    check: str
    status: str
    detail: str
    id: str = ""  # the doctor finding this result feeds (docs/doctor.md), "" for none


# A configuration document: its text (None when it cannot be read), where it is from, and why it cannot be read.
Document = tuple[str | None, str, str]


def file_document(config_file: str | None) -> Document:
    """`agent check`: the file, else DP_MACVTAP_CONF (the agent itself reads through its ConfigSource)."""
    if config_file:
        try:
            return Path(config_file).read_text(), config_file, ""
        except OSError as exc:
            return None, config_file, str(exc.strerror)
    raw = os.environ.get(dpconfig.CONFIG_KEY, "")
    return (raw, dpconfig.CONFIG_KEY, "") if raw else (
        None, dpconfig.CONFIG_KEY, f"no configuration: set {dpconfig.CONFIG_KEY} or pass --config-file")


def read_config(document: Document) -> tuple[dpconfig.Config | None, str]:
    raw, where, error = document
    if raw is None:
        return None, error if error.startswith("no configuration") else f"cannot read {where}: {error}"
    try:
        return dpconfig.parse(raw, where=where), where
    except dpconfig.MalformedConfigError as exc:
        return None, exc.message


def run_checks(*, document: Document, plugin_dir: str, owner: int, group: int,
               tap_dir: str = "/dev", visibility: Result | None = None) -> list[Result]:
    """Every node check. `visibility`: a /dev/tapN visibility result measured before (the test creates a link, so
    the periodic report measures it once)."""
    from macvtapctl.agent.netlink import host

    h = host()
    return _run(h, {link.name: link for link in h.links()}, document=document, plugin_dir=plugin_dir,
                owner=owner, group=group, tap_dir=tap_dir, visibility=visibility)


def _run(h: BlockingNetlink, links: dict[str, Link], *, document: Document, plugin_dir: str, owner: int, group: int,
         tap_dir: str, visibility: Result | None) -> list[Result]:
    results: list[Result] = []
    cfg, where = read_config(document)
    lowers: list[str] = []
    if cfg is None:
        results.append(Result("configuration", FAIL, where))
    else:
        entries, skipped = dpconfig.usable_entries(cfg)
        said = "; ".join([*skipped, *(n.text for n in cfg.notices)])
        if not entries and not cfg.expose_all:
            results.append(Result("configuration", FAIL, f"nothing can be registered: {said or 'no entry'}",
                                  "dp-config"))
        else:
            summary = ("[]: every physical link or bond" if cfg.expose_all else
                       f"{len(entries)} resource(s) in {where}")
            results.append(Result("configuration", WARN if said else OK, f"{summary}; {said}" if said else summary,
                                  "dp-config"))
        lowers = sorted({e.lower_device for e in entries})
    for lower in lowers:
        link = links.get(lower)
        if link is None:
            results.append(Result(f"lower device {lower}", FAIL, "does not exist on this node: its resource "
                                  "advertises no devices", "resource-capacity"))
        elif not link.up:
            results.append(Result(f"lower device {lower}", WARN, "exists but is down: VMs get no carrier",
                                  "resource-capacity"))
        else:
            results.append(Result(f"lower device {lower}", OK, f"up, MTU {link.mtu}", "resource-capacity"))
        if link is not None and link.kind in NESTED_KINDS:
            results.append(Result(f"lower device {lower} kind", WARN, f"is itself a {link.kind} link: macvtap on it "
                                  "works only as far as its own parent lets frames through", "l2-nested-lower"))
    results.append(visibility or _tap_visibility(h, [links[name] for name in lowers if name in links], tap_dir))
    leaked = sorted(n for n, link in links.items() if n.startswith("mvt") and link.kind == "macvtap")
    results.append(Result("leaked links", WARN if leaked else OK,
                          f"{len(leaked)} temporary macvtap link(s) on the node: {', '.join(leaked[:10])} (allocated "
                          "but not attached; reclaimed once the kubelet lists no live pod holding their device)"
                          if leaked else "none", "leaked-links"))
    kubelet = Path(plugin_dir) / "kubelet.sock"
    results.append(Result("kubelet socket", OK if kubelet.exists() else FAIL,
                          str(kubelet) if kubelet.exists() else f"{kubelet} not found: wrong --device-plugin-dir "
                          "(k3s and others use another path) or the kubelet is not running", "agent-health"))
    results.append(_tap_owners(tap_dir, owner, group, {link.index for link in links.values()}))
    return results


# Lower devices that are virtual links themselves (a VLAN is fine on its own; these stack L2 emulation).
NESTED_KINDS = ("macvlan", "macvtap", "veth", "ipvlan", "bridge")


def lower_devices(links: dict[str, Link]) -> dict[str, dict[str, object]]:
    """Every link a resource could use, with what doctor compares against (MTU for NAD mtu, kind, state)."""
    return {n: {"mtu": link.mtu, "up": link.up, "kind": link.kind or "device"}
            for n, link in sorted(links.items()) if not link.loopback and not n.startswith("mvt")}


def virtualization(dmi_dir: str = "/sys/class/dmi/id") -> str | None:
    """The hypervisor this node runs on, from DMI (None on bare metal or when unknown)."""
    known = ("QEMU", "KVM", "VMware", "VirtualBox", "Xen", "Microsoft Corporation", "Proxmox", "Google",
             "Amazon EC2", "OpenStack", "Nutanix", "BHYVE")
    found = []
    for key in ("sys_vendor", "product_name"):
        try:
            found.append(Path(dmi_dir, key).read_text().strip())
        except OSError:
            continue
    for value in found:
        if any(k.lower() in value.lower() for k in known):
            return value
    return None


def node_report(node: str, *, document: Document, plugin_dir: str, owner: int, group: int,
                cni_bin_dir: str | None, tap_dir: str = "/dev", visibility: Result | None = None,
                dmi_dir: str = "/sys/class/dmi/id") -> dict[str, Any]:
    """What `doctor` reads from this node's agent (GET /doctor on its health port)."""
    import datetime as dt

    from macvtapctl.agent.netlink import host

    h = host()
    links = {link.name: link for link in h.links()}
    results = _run(h, links, document=document, plugin_dir=plugin_dir, owner=owner, group=group,
                   tap_dir=tap_dir, visibility=visibility)
    if cni_bin_dir:
        shim = Path(cni_bin_dir) / "macvtap"
        results.append(Result("CNI binary", OK if shim.exists() else FAIL, str(shim) if shim.exists() else
                              f"{shim} is missing: the runtime cannot call the plugin (check --install-cni: k3s and "
                              "microk8s keep CNI binaries elsewhere)", "agent-health"))
    return {"node": node, "time": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
            "checks": [r.__dict__ for r in results], "lowerDevices": lower_devices(links),
            "configDigest": dpconfig.digest(document[0] or None),
            "virtualization": virtualization(dmi_dir)}


CHECK_LINK_PREFIX = "mvtchk"  # the throwaway macvtap of the /dev/tapN visibility test


def remove_check_leftovers(h: BlockingNetlink) -> list[str]:
    """Delete throwaway test links a check killed mid-way (SIGKILL between create and delete) left behind."""
    from pyroute2.netlink.exceptions import NetlinkError

    gone = []
    for link in h.links():
        if link.name.startswith(CHECK_LINK_PREFIX) and link.kind == "macvtap":
            try:
                h.delete(link.index)
            except NetlinkError:  # gone already (another checker finished): nothing to do
                continue
            gone.append(link.name)
    return gone


def _tap_visibility(h: BlockingNetlink, lowers: list[Link], tap_dir: str) -> Result:
    """Create a throwaway macvtap and look for its /dev/tapN here (KinD nodes do not see the host's devtmpfs)."""
    lower = lowers[0] if lowers else None
    if lower is None:
        return Result("/dev/tapN visible", SKIP, "no configured lower device on this node yet", "kind-dev")
    name = CHECK_LINK_PREFIX + secrets.token_hex(4)
    try:
        link = h.create_macvtap(name, lower.index, "bridge", lower.txqlen)
    except Exception as exc:
        return Result("/dev/tapN visible", FAIL, f"cannot create a macvtap on {lower.name}: {exc}", "kind-dev")
    try:
        path = Path(tap_dir) / f"tap{link.index}"
        if path.exists():
            return Result("/dev/tapN visible", OK, f"{path} appeared for a test macvtap", "kind-dev")
        return Result("/dev/tapN visible", FAIL,
                      f"{path} did not appear: this /dev is not the node's devtmpfs. On KinD mount the host /dev "
                      "into every node (extraMounts hostPath /dev, propagation HostToContainer; see "
                      "`macvtapctl kind-config`); in the agent pod mount the host /dev", "kind-dev")
    finally:
        h.delete(link.index)


def _tap_owners(tap_dir: str, owner: int, group: int, host_indexes: set[int]) -> Result:
    """/dev/tapN of attached macvtaps (in pod namespaces) must belong to the configured owner (qemu: 107)."""
    wrong = []
    for entry in sorted(Path(tap_dir).glob("tap[0-9]*")):
        try:
            st = entry.stat()
        except OSError:
            continue
        if not stat.S_ISCHR(st.st_mode) or int(entry.name[3:]) in host_indexes:
            continue  # not attached yet: root-owned until the CNI ADD
        if (st.st_uid, st.st_gid) != (owner, group):
            wrong.append(f"{entry} {st.st_uid}:{st.st_gid}")
    if wrong:
        return Result("tap ownership", FAIL, f"expected {owner}:{group}: " + ", ".join(wrong[:10]) +
                      " (qemu cannot open them: Permission denied)", "tap-ownership")
    return Result("tap ownership", OK, f"attached tap devices belong to {owner}:{group}", "tap-ownership")
