"""The CNI commands on real links: ADD, DEL, CHECK, STATUS, GC. Blocking; the daemon runs them in threads."""

from __future__ import annotations

import contextlib
import errno
import logging
import os
import time
from collections.abc import Callable
from typing import Any

from macvtapctl import validate
from macvtapctl.agent import link_name
from macvtapctl.agent.cni import protocol as cni
from macvtapctl.agent.cni.protocol import CniError, Request
from macvtapctl.agent.link_name import temporary_link_name
from macvtapctl.agent.link_registry import LinkBusy, LinkRegistry
from macvtapctl.agent.netlink import BlockingNetlink, Link, error_code, host, in_namespace, netns
from macvtapctl.errors import UsageError

log = logging.getLogger("macvtapctl.agent.cni")
TEMP_PREFIX = link_name.PREFIX
E_INVALID_NETNS = 8  # libcni's ErrInvalidNetNS


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


def add(req: Request, registry: LinkRegistry, *, tap_dir: str = "/dev",
        is_target: Callable[[tuple[str, str] | None], bool] | None = None) -> dict[str, Any]:
    """`is_target` (agent/migration_target.py, given only where the hand-off runs to watch parked links): whether
    the pod is a migration's target, whose link is then attached parked (down until its guest runs here)."""
    tmp = temporary_link_name(req.device_id)
    try:
        registry.claim(tmp)  # before opening the namespace: a refused ADD must not hold a pod's netns open
    except LinkBusy as exc:
        raise CniError(cni.E_TRY_AGAIN, str(exc)) from None
    try:
        pod = pod_of(req)
        park = is_target is not None and is_target(pod)
        fd = _open(req)
        assert fd is not None
        try:
            result, final, lower = _add(req, tmp, fd, tap_dir, park)
        finally:
            os.close(fd)
        if park:
            registry.park(final.mac, req.netns, req.ifname, lower, final.tx_dropped, pod)
            log.info("ADD %s: %s attached parked (down) in %s: the pod is a migration target; up when its guest "
                     "runs here", req.container_id, req.ifname, req.netns)
        else:
            registry.attach(final.mac, req.netns, req.ifname, lower, pod)
        return result
    finally:
        registry.release(tmp)


def pod_of(req: Request) -> tuple[str, str] | None:
    """The pod the runtime names in CNI_ARGS (K8S_POD_NAMESPACE, K8S_POD_NAME), when both are Kubernetes names:
    used only to say whose link the hand-off moved (agent/events.py)."""
    try:
        return (validate.check_dns_label(req.args.get("K8S_POD_NAMESPACE", ""), "K8S_POD_NAMESPACE"),
                validate.check_dns_subdomain(req.args.get("K8S_POD_NAME", ""), "K8S_POD_NAME"))
    except UsageError:
        return None


def _add(req: Request, tmp: str, fd: int, tap_dir: str, park: bool) -> tuple[dict[str, Any], Link, str]:
    """ADD's work: (the result, the link as attached, its lower device's name)."""
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
    lower = h.get(link.lower_index) if link.lower_index else None
    if req.mtu and lower is not None and req.mtu > lower.mtu:
        raise CniError(cni.E_MTU_TOO_LARGE, f"mtu {req.mtu} is larger than the MTU {lower.mtu} of lower device "
                       f"{lower.name}", "a macvtap cannot exceed its lower device's MTU: lower the NAD's mtu or "
                       "raise the NIC's")
    with in_namespace(fd) as pod:
        try:
            return (*_move_and_configure(req, tmp, link, fd, pod, tap_dir, park), lower.name if lower else "")
        except CniError as exc:
            if exc.code != cni.E_IFNAME_EXISTS:  # refused before the move: nothing to undo
                _remove_from(pod, (req.ifname, tmp))
            raise
        except BaseException:
            _remove_from(pod, (req.ifname, tmp))
            raise


def _move_and_configure(req: Request, tmp: str, link: Link, fd: int, pod: BlockingNetlink,
                        tap_dir: str, park: bool) -> tuple[dict[str, Any], Link]:
    """One RTM_SETLINK moves the link into the pod and configures it there (three netlink round trips fewer than
    look up, move, look up, configure, read back), then one read of the result in the pod."""
    try:
        # The alias keeps the temporary name on the link: DEL gives it back under that name even when the
        # runtime sends no deviceID (Multus cannot look it up once the pod is gone).
        # Down and silent first (no IPv6 link-local, so no DAD or router solicitation from the VM's MAC): a
        # migration target's link must not make the LAN's switches learn the VM's MAC here before the guest runs
        # here (docs/migration.md). Up below, once silent; a target's stays down (parked) until its guest writes.
        host().configure(link.index, netns_fd=fd, name=req.ifname, mtu=req.mtu, mac=req.mac, promisc=req.promisc,
                         alias=tmp, up=False, silent=True)
    except Exception as exc:
        code = error_code(exc)
        if code == errno.EEXIST:
            # The kernel moved the link under its own name, then refused the rename: give it back to the node
            # as it was, so the allocation stays usable.
            moved = pod.find(tmp)
            if moved is not None:
                pod.move_to(moved.index, netns.host_netns_fd(), name=tmp)
            raise CniError(cni.E_IFNAME_EXISTS, f"interface {req.ifname} already exists in {req.netns}") from None
        if code == errno.EADDRINUSE and req.mac:
            raise CniError(cni.E_NETLINK, f"MAC {req.mac} is already used by another macvtap on the same lower "
                           "device", "every VM NIC on a NIC needs its own MAC") from None
        raise _netlink_error(f"cannot move {tmp} into {req.netns} as {req.ifname}", exc) from None
    final = pod.find(req.ifname)
    if final is None:
        raise CniError(cni.E_NETLINK, f"{req.ifname} vanished while being configured")
    if not park:
        try:
            pod.set_up(final.index)
        except Exception as exc:
            raise _netlink_error(f"cannot set {req.ifname} up in {req.netns}", exc) from None
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
    return cni.add_result(req, final.mac, final.mtu), final


def _remove_from(pod: BlockingNetlink, names: tuple[str, ...]) -> None:
    for name in names:
        try:
            link = pod.find(name)
            if link is not None and link.kind == "macvtap":
                pod.delete(link.index)
        except Exception:  # best effort; the original error is what the caller needs to see
            log.exception("cleanup of %s failed", name)


def delete(req: Request, registry: LinkRegistry | None = None) -> None:
    """Best effort and idempotent: a missing netns or link is success.

    The macvtap goes back to the node under its temporary name instead of being deleted: the kubelet allocates a
    device once per pod, so a sandbox that is retried (a later plugin in the pod's network list failed, the
    runtime failed) must find it again, with the same ifindex, so the /dev/tapN the kubelet handed to the
    container stays right. Links no live pod owns are reclaimed by `gc`.
    """
    if not req.netns:
        return
    if registry is not None:
        registry.detach(req.netns, req.ifname)
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
            _give_back(req, pod, link, registry)
    except CniError:
        raise
    except Exception as exc:
        raise _netlink_error(f"cannot delete {req.ifname} in {req.netns}", exc) from None
    finally:
        os.close(fd)


def _give_back(req: Request, pod: BlockingNetlink, link: Link, registry: LinkRegistry | None) -> None:
    # The alias (set by ADD) names the link for sure; Multus' deviceID on a DEL for a pod that is already gone can
    # name another pod's device (measured on a real node), so it is only the fallback.
    if link.alias.startswith(TEMP_PREFIX):
        tmp = link.alias
    elif req.device_id:
        tmp = temporary_link_name(req.device_id)
    else:
        pod.delete(link.index)  # attached by something else: nothing to give back to
        return
    current = registry.allocated_index.get(tmp) if registry is not None else None
    if current is not None and current != link.index:
        pod.delete(link.index)  # the device was allocated again since: this link's /dev/tapN is no one's now
        return
    try:
        pod.move_to(link.index, netns.host_netns_fd(), name=tmp)
    except Exception as exc:
        if error_code(exc) != errno.EEXIST:
            raise
        # A link of that name is on the node already. The one the latest Allocate made wins; the other is stale.
        h = host()
        there = h.find(tmp)
        if current is not None and there is not None and there.index != current:
            h.delete(there.index)
            pod.move_to(link.index, netns.host_netns_fd(), name=tmp)
        else:
            pod.delete(link.index)
            return
    if registry is not None:
        registry.allocated(tmp)
    log.info("DEL %s: %s returned to the node as %s", req.container_id, req.ifname, tmp)


def check(req: Request, registry: LinkRegistry | None = None) -> None:
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
    if not link.up and not (registry is not None and registry.is_held_down(req.netns, req.ifname)):
        problems.append("is down")  # unless the agent holds it down: a parked target, a handed-off source
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


NETNS_DIR = "/run/netns"  # where the container runtime bind-mounts pods' network namespaces (the agent mounts it)


def adopt(registry: LinkRegistry, netns_dir: str = NETNS_DIR, *, park_down: bool = False) -> int:
    """Make the migration hand-off know every pod macvtap on this node, not only those this agent's ADD attached:
    the links macvtap-cni attached before a take-over, and all of them after an agent restart (the registry lives
    in memory). A link up in a pod's namespace on a node NIC is recorded as ADD records it; entries whose namespace
    is gone (a DEL this agent never saw) are dropped. Returns how many links were adopted."""
    if not os.path.isdir(netns_dir):
        return 0
    with registry.lock:
        gone = {path for path, _ifname, _lower in registry.attached.values() if not os.path.exists(path)}
        gone |= {path for path in registry.pods if not os.path.exists(path)}
    for path in gone:
        registry.forget_netns(path)
    lowers = {link.index: link.name for link in host().links()}
    adopted = 0
    for entry in sorted(os.listdir(netns_dir)):
        path = os.path.join(netns_dir, entry)
        try:
            fd = netns.open_netns(path)
        except (OSError, netns.NotANetns):
            continue  # gone meanwhile, or not a namespace
        try:
            if netns.is_host_netns(fd):
                continue
            with in_namespace(fd) as pod:
                for link in pod.links():
                    if link.kind != "macvtap" or link.lower_index not in lowers:
                        continue
                    if not link.up:
                        # Down: handed off already, or a migration target parked by this agent before it
                        # restarted (`park_down`, at start only: no ADD is half-way then). Parked again, its
                        # guest's first frame here sets it up; a handed-off source's guest writes nothing.
                        if (park_down and link.alias.startswith(TEMP_PREFIX)
                                and not registry.is_held_down(path, link.name)):
                            registry.park(link.mac, path, link.name, lowers[link.lower_index], link.tx_dropped)
                            adopted += 1
                        continue
                    if registry.attached_to(link.mac) is None:
                        registry.attach(link.mac, path, link.name, lowers[link.lower_index])
                        adopted += 1
        except Exception:  # one namespace that cannot be read must not stop the others
            log.exception("adopt: cannot read the links in %s", path)
        finally:
            os.close(fd)
    if adopted:
        log.info("adopted %d pod link(s) this agent did not attach (for the migration hand-off)", adopted)
    return adopted


def gc(registry: LinkRegistry, owned: set[str] | None) -> list[str]:
    """Delete the temporary mvt* macvtap links on the node that no live pod owns (see LinkRegistry).

    `owned` is the set of device IDs the kubelet assigns to live pods, or None when that is unknown.
    """
    names = {temporary_link_name(d) for d in owned} if owned is not None else None
    h = host()
    now = time.monotonic()
    reclaimed = []
    seen = set()
    for link in h.links():
        if not link.name.startswith(TEMP_PREFIX) or link.kind != "macvtap":
            continue
        seen.add(link.name)
        with registry.lock:  # an ADD claims under this lock: never delete a link it is attaching
            current = registry.allocated_index.get(link.name)
            stale = current is not None and current != link.index and link.name not in registry.busy
            if not stale and not registry.reclaimable(link.name, now, names):
                continue
            h.delete(link.index)
            if not stale:
                registry.first_seen.pop(link.name, None)
                registry.allocated_index.pop(link.name, None)
        reclaimed.append(link.name)
    with registry.lock:  # forget links that are gone (an attached link's allocation record stays for its DEL)
        for name in list(registry.first_seen):
            if name not in seen and name not in registry.busy:
                registry.first_seen.pop(name, None)
    if reclaimed:
        log.info("reclaimed %d link(s) no pod owns: %s", len(reclaimed), ", ".join(reclaimed))
    return reclaimed


def handle(env: dict[str, str], stdin: bytes, registry: LinkRegistry, *, tap_dir: str = "/dev",
           on_reclaim: Callable[[int], None] | None = None,
           owned: Callable[[], set[str] | None] | None = None,
           is_target: Callable[[tuple[str, str] | None], bool] | None = None) -> tuple[int, bytes]:
    """One CNI call: (exit code, stdout). Never raises."""
    import json

    version = "1.1.0"
    try:
        if env.get("CNI_COMMAND") == "VERSION":
            return 0, json.dumps(cni.version_result(stdin)).encode()
        req = cni.parse_request(env, stdin)
        version = req.version
        if req.command == "ADD":
            return 0, json.dumps(add(req, registry, tap_dir=tap_dir, is_target=is_target)).encode()
        if req.command == "DEL":
            delete(req, registry)
        elif req.command == "CHECK":
            check(req, registry)
        elif req.command == "STATUS":
            status()
        elif req.command == "GC":
            reclaimed = gc(registry, owned() if owned is not None else None)
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
