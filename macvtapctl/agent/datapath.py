"""The CNI commands on real links: ADD, DEL, CHECK, STATUS, GC. Blocking; the daemon runs them in threads."""

from __future__ import annotations

import contextlib
import logging
import os
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from macvtapctl.agent import cni, netns
from macvtapctl.agent.cni import CniError, Request
from macvtapctl.agent.netlink import Netlink, error_code, host, in_namespace
from macvtapctl.agent.xxh64 import temporary_link_name

log = logging.getLogger("macvtapctl.agent.cni")
TEMP_PREFIX = "mvt"
E_INVALID_NETNS = 8  # libcni's ErrInvalidNetNS


@dataclass
class LinkRegistry:
    """When each temporary mvt* link was first seen or allocated, and which are in use right now.

    GC never removes a link younger than `min_age` seconds (it may be an allocation whose pod is still
    starting) or one an ADD is working on.
    """

    min_age: float = 60.0
    first_seen: dict[str, float] = field(default_factory=dict)
    busy: set[str] = field(default_factory=set)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def allocated(self, name: str) -> None:
        with self.lock:
            self.first_seen[name] = time.monotonic()

    def claim(self, name: str) -> None:
        with self.lock:
            if name in self.busy:
                raise CniError(cni.E_TRY_AGAIN, f"link {name} is being attached by another ADD")
            self.busy.add(name)

    def release(self, name: str) -> None:
        with self.lock:
            self.busy.discard(name)
            self.first_seen.pop(name, None)

    def reclaimable(self, name: str, now: float) -> bool:
        with self.lock:
            seen = self.first_seen.setdefault(name, now)
            return name not in self.busy and now - seen >= self.min_age


def _netlink_error(what: str, exc: BaseException) -> CniError:
    code = error_code(exc)
    detail = os.strerror(code) if code else str(exc)
    return CniError(cni.E_NETLINK, f"{what}: {detail}", type(exc).__name__)


def _open(req: Request, *, allow_missing: bool = False) -> int | None:
    try:
        fd = netns.open_netns(req.netns)
    except FileNotFoundError:
        if allow_missing:
            return None
        raise CniError(cni.E_INVALID_ENV, f"CNI_NETNS {req.netns} does not exist") from None
    except netns.NotANetns:
        raise CniError(cni.E_INVALID_ENV, f"CNI_NETNS {req.netns} is not a network namespace") from None
    except OSError as exc:
        raise CniError(cni.E_IO, f"cannot open CNI_NETNS {req.netns}: {exc.strerror}") from None
    if netns.is_host_netns(fd) and not req.netns_override:
        os.close(fd)
        raise CniError(E_INVALID_NETNS, "CNI_NETNS is the node's own network namespace, not a pod's")
    return fd


def add(req: Request, registry: LinkRegistry, *, tap_dir: str = "/dev") -> dict[str, Any]:
    tmp = temporary_link_name(req.device_id)
    fd = _open(req)
    assert fd is not None
    registry.claim(tmp)
    try:
        return _add(req, tmp, fd, tap_dir)
    finally:
        registry.release(tmp)
        os.close(fd)


def _add(req: Request, tmp: str, fd: int, tap_dir: str) -> dict[str, Any]:
    h = host()
    try:
        link = h.find(tmp)
    except Exception as exc:
        raise _netlink_error("cannot read links on the node", exc) from None
    if link is None:
        raise CniError(cni.E_DEVICE_NOT_FOUND, f"link {tmp} for deviceID {req.device_id!r} not found on this node",
                       "the macvtap device plugin creates it when the kubelet allocates the device: does the pod "
                       "request the NAD's resource, and did the allocation happen on this node?")
    if link.kind != "macvtap":
        raise CniError(cni.E_DEVICE_NOT_FOUND, f"link {tmp} for deviceID {req.device_id!r} is a {link.kind or 'plain'} "
                       "link, not a macvtap")
    lower = h.get(link.lower_index) if (link.lower_index and req.mtu) else None
    if req.mtu and lower is not None and req.mtu > lower.mtu:
        raise CniError(cni.E_MTU_TOO_LARGE, f"mtu {req.mtu} is larger than the MTU {lower.mtu} of lower device "
                       f"{lower.name}", "a macvtap cannot exceed its lower device's MTU: lower the NAD's mtu or "
                       "raise the NIC's")
    with in_namespace(fd) as pod:
        if pod.find(req.ifname) is not None:
            raise CniError(cni.E_IFNAME_EXISTS, f"interface {req.ifname} already exists in {req.netns}")
        try:
            h.move(link.index, fd)
        except Exception as exc:
            raise _netlink_error(f"cannot move {tmp} into {req.netns}", exc) from None
        try:
            return _configure(req, tmp, pod, tap_dir)
        except BaseException:
            _remove_from(pod, (req.ifname, tmp))
            raise


def _configure(req: Request, tmp: str, pod: Netlink, tap_dir: str) -> dict[str, Any]:
    moved = pod.find(tmp)
    if moved is None:
        raise CniError(cni.E_NETLINK, f"{tmp} vanished after the move into {req.netns}")
    try:
        pod.configure(moved.index, name=req.ifname, mtu=req.mtu, mac=req.mac, promisc=req.promisc)
    except Exception as exc:
        if error_code(exc) == 98 and req.mac:  # EADDRINUSE
            raise CniError(cni.E_NETLINK, f"MAC {req.mac} is already used by another macvtap on the same lower "
                           "device", "every VM NIC on a NIC needs its own MAC") from None
        raise _netlink_error(f"cannot configure {req.ifname} in {req.netns}", exc) from None
    final = pod.get(moved.index)
    if final is None:
        raise CniError(cni.E_NETLINK, f"{req.ifname} vanished while being configured")
    # The index may differ from the node's (the kernel renumbers on a clash): use the pod's view.
    tap = os.path.join(tap_dir, f"tap{final.index}")
    try:
        os.chown(tap, req.owner, req.group)
    except FileNotFoundError:
        raise CniError(cni.E_TAP_NOT_FOUND, f"{tap} does not exist",
                       "the agent's /dev must be the node's devtmpfs (on KinD, mount the host /dev into the "
                       "nodes: macvtapctl kind-config)") from None
    except OSError as exc:
        raise CniError(cni.E_IO, f"cannot chown {tap} to {req.owner}:{req.group}: {exc.strerror}") from None
    return cni.add_result(req, final.mac, final.mtu)


def _remove_from(pod: Netlink, names: tuple[str, ...]) -> None:
    for name in names:
        try:
            link = pod.find(name)
            if link is not None and link.kind == "macvtap":
                pod.delete(link.index)
        except Exception:  # best effort; the original error is what the caller needs to see
            log.exception("cleanup of %s failed", name)


def delete(req: Request) -> None:
    """Best effort and idempotent: a missing netns or link is success."""
    if not req.netns:
        return
    try:
        fd = _open(req, allow_missing=True)
    except CniError as exc:
        log.warning("DEL %s: %s; nothing to delete", req.container_id, exc.msg)
        return
    if fd is None:
        return
    try:
        with in_namespace(fd) as pod:
            link = pod.find(req.ifname)
            if link is None:
                return
            if link.kind != "macvtap":
                log.warning("DEL %s: %s in %s is a %s link, not ours; leaving it", req.container_id,
                            req.ifname, req.netns, link.kind)
                return
            pod.delete(link.index)
    except CniError:
        raise
    except Exception as exc:
        raise _netlink_error(f"cannot delete {req.ifname} in {req.netns}", exc) from None
    finally:
        os.close(fd)


def check(req: Request) -> None:
    fd = _open(req)
    assert fd is not None
    try:
        with in_namespace(fd) as pod:
            link = pod.find(req.ifname)
    finally:
        os.close(fd)
    problems = []
    if link is None:
        raise CniError(cni.E_CHECK_FAILED, f"interface {req.ifname} not found in {req.netns}")
    if link.kind != "macvtap":
        problems.append(f"is a {link.kind or 'plain'} link, not macvtap")
    if req.mtu and link.mtu != req.mtu:
        problems.append(f"has MTU {link.mtu}, expected {req.mtu}")
    mac = cni.expected_mac(req)
    if mac and link.mac != mac:
        problems.append(f"has MAC {link.mac}, expected {mac}")
    if not link.up:
        problems.append("is down")
    if req.promisc and not link.promisc:
        problems.append("is not in promiscuous mode")
    if problems:
        raise CniError(cni.E_CHECK_FAILED, f"interface {req.ifname} " + "; ".join(problems))


def status() -> None:
    try:
        if host().find("lo") is None:
            raise CniError(cni.E_NOT_AVAILABLE, "netlink works but the node has no loopback link")
    except CniError:
        raise
    except Exception as exc:
        raise CniError(cni.E_NOT_AVAILABLE, f"netlink is not usable: {exc}") from None


def gc(registry: LinkRegistry) -> list[str]:
    """Delete temporary mvt* macvtap links on the node that no ADD is using and that are older than min_age.

    Attached links live in pod namespaces under their pod name, so an mvt* link on the node is either an
    allocation whose pod has not started yet (young) or a leak (old).
    """
    h = host()
    now = time.monotonic()
    reclaimed = []
    seen = set()
    for link in h.links():
        if not link.name.startswith(TEMP_PREFIX) or link.kind != "macvtap":
            continue
        seen.add(link.name)
        if registry.reclaimable(link.name, now):
            h.delete(link.index)
            reclaimed.append(link.name)
            with registry.lock:
                registry.first_seen.pop(link.name, None)
    with registry.lock:  # forget links that are gone
        for name in list(registry.first_seen):
            if name not in seen and name not in registry.busy:
                registry.first_seen.pop(name, None)
    if reclaimed:
        log.info("GC reclaimed %d leaked link(s): %s", len(reclaimed), ", ".join(reclaimed))
    return reclaimed


def handle(env: dict[str, str], stdin: bytes, registry: LinkRegistry, *, tap_dir: str = "/dev",
           on_reclaim: Callable[[int], None] | None = None) -> tuple[int, bytes]:
    """One CNI call: (exit code, stdout). Never raises."""
    import json

    version = "1.1.0"
    try:
        if env.get("CNI_COMMAND") == "VERSION":
            return 0, json.dumps(cni.version_result(stdin)).encode()
        req = cni.parse_request(env, stdin)
        version = req.version
        if req.command == "ADD":
            return 0, json.dumps(add(req, registry, tap_dir=tap_dir)).encode()
        if req.command == "DEL":
            delete(req)
        elif req.command == "CHECK":
            check(req)
        elif req.command == "STATUS":
            status()
        elif req.command == "GC":
            reclaimed = gc(registry)
            if on_reclaim is not None and reclaimed:
                on_reclaim(len(reclaimed))
        return 0, b""
    except CniError as exc:
        if version == "1.1.0":
            with contextlib.suppress(ValueError, AttributeError):
                version = str(json.loads(stdin).get("cniVersion") or version)
        log.info("%s failed: %s (%s)", env.get("CNI_COMMAND"), exc.msg, exc.details)
        return 1, json.dumps(exc.to_json(version)).encode()
    except Exception as exc:  # a bug: still answer in the protocol
        log.exception("CNI %s crashed", env.get("CNI_COMMAND"))
        return 1, json.dumps({"cniVersion": version, "code": cni.E_IO, "msg": f"internal error: {exc}"}).encode()
