"""The L2 hand-off of a live migration, on the source node (kubevirt#5912).

When KubeVirt moves a VM, its guest resumes on the target node and announces itself there (QEMU's RARP, or the
guest's own gratuitous ARP). The source node's macvtap stays up with the VM's MAC until the source pod ends
(seconds): in bridge mode every other macvtap of the same NIC on the source node still delivers to it, so the VMs
beside it lose the migrated VM. The agent sees that announcement arrive from the LAN on the node's NIC — a frame
from a VM's MAC that a link of this node carries means the VM now runs elsewhere — and sets that link down at once:
down, a macvtap leaves its NIC's bridge, and its neighbours' frames go out to the LAN and the VM's new node. The
link stays (its pod still owns it until it ends; CNI DEL gives it back).

Why no arming by the API: only a migration puts a node's VM MAC on the LAN from elsewhere. A host that spoofs the
MAC takes the LAN's switches with it already; this adds the source node's bridge to what it takes. The measured
gap (benchmarks/migration.py, docs/migration.md) is the reason for a wire signal over the API's: tens of ms, not
the seconds of watch latency on a busy node.

Why it is safe to be wrong: a link set down stays watched until its pod ends. If its guest is still here — the
announcement came from a duplicate MAC elsewhere, or the migration failed after it — the guest keeps writing to
its now-down macvtap, which the kernel counts as the link's tx_dropped; at REVERT_AFTER frames the agent sets the
link up again, says so (log, metric, the node report), and the VM is back on its NIC. A successful migration
never trips it: the source guest is paused before the target resumes and announces, and writes nothing after.

The target node's side: a migration target's link is attached parked, down (agent/migration_target.py), so that
this node's other VMs keep reaching the VM on its source node through the LAN while it migrates. The first frame
its guest writes here (QEMU's announcement when the guest resumes) is counted as the down link's tx_dropped: the
agent then sets it up at once and announces the VM's MAC from it (a RARP, as QEMU does), since the frame that woke
it was lost. Parked links are read every PARKED_EVERY, not WATCH_EVERY: that wait is part of the VM's gap."""

from __future__ import annotations

import collections
import contextlib
import datetime
import logging
import os
import select
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

from macvtapctl.agent.link_registry import LinkRegistry

if TYPE_CHECKING:
    from macvtapctl.agent.netlink.link import Link

log = logging.getLogger(__name__)

ETH_P_ARP, ETH_P_RARP = 0x0806, 0x8035
PACKET_OUTGOING = 4  # linux/if_packet.h: sent by this host (a local guest's own announcement on a target node)
REVERT_AFTER = 3  # frames the guest wrote to its down link: it still runs here (one could be a flushed queue)
WATCH_EVERY = 0.2  # seconds between reads of the watched links' counters
PARKED_EVERY = 0.01  # seconds between reads of the parked targets' counters (part of the migrating VM's gap)
RECENT = 32  # hand-offs and reverts kept for the node report


HANDOFF, REVERTED, TARGET_UP = "MacvtapHandOff", "MacvtapHandOffReverted", "MacvtapTargetUp"  # the Events' reasons
Tell = Callable[[tuple[str, str] | None, str, str], None]  # (pod namespace and name, reason, message)


class Links(Protocol):
    """What the hand-off does to a pod's macvtap (by its pod namespace, name and MAC, which must still match)."""

    def down(self, netns: str, ifname: str, mac: str) -> int | None:
        """Set it down; its tx_dropped then, or None when it is gone (or has another MAC now)."""

    def state(self, netns: str, ifname: str, mac: str) -> tuple[bool, int] | None:
        """Whether it is up, and its tx_dropped now; None when it is gone."""

    def up(self, netns: str, ifname: str, mac: str) -> bool:
        """Set it up again; False when it is gone."""

    def announce(self, netns: str, ifname: str, mac: str) -> None:
        """Send a RARP from the MAC out of the link, as QEMU announces a migrated guest (best effort)."""


@dataclass
class Watched:
    mac: str
    netns: str
    ifname: str
    lower: str
    dropped: int  # tx_dropped when it was set down
    since: float  # time.monotonic()


class HandOff(threading.Thread):
    """Watches the node's interfaces for ARP and RARP frames from the LAN: a link whose MAC one of them comes from,
    arriving on that link's lower device, is set down, then watched until its pod ends (set up again if its guest
    turns out to be still here)."""

    def __init__(self, registry: LinkRegistry, links: Links, on_handoff: Callable[[], None] = lambda: None,
                 on_revert: Callable[[], None] = lambda: None, tell: Tell = lambda pod, reason, text: None,
                 on_target_up: Callable[[], None] = lambda: None) -> None:
        super().__init__(name="handoff", daemon=True)
        self.registry, self.links, self.on_handoff, self.on_revert = registry, links, on_handoff, on_revert
        self.on_target_up = on_target_up
        self.tell = tell  # an Event for the pod's VMI (agent/events.py); never blocks
        self.watched: dict[tuple[str, str], Watched] = {}
        self.events: collections.deque[dict[str, Any]] = collections.deque(maxlen=RECENT)
        self.socks = [socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(proto))
                      for proto in (ETH_P_ARP, ETH_P_RARP)]
        self.stop_r, self.stop_w = os.pipe()
        self.wake_r, self.wake_w = os.pipe()
        os.set_blocking(self.wake_w, False)
        registry.on_park = self.wake
        self.last_check = 0.0

    def wake(self) -> None:
        """A link was parked: read it from now on (called from the CNI's threads)."""
        with contextlib.suppress(BlockingIOError):  # a wake-up is pending already
            os.write(self.wake_w, b"p")

    def run(self) -> None:
        by_fd = {s.fileno(): s for s in self.socks}
        while True:
            parked = bool(self.registry.parked)
            timeout = PARKED_EVERY if parked else WATCH_EVERY if self.watched else None
            ready, _, _ = select.select([*by_fd, self.stop_r, self.wake_r], [], [], timeout)
            if self.stop_r in ready:
                return
            if self.wake_r in ready:
                os.read(self.wake_r, 512)
            for fd in ready:
                if fd not in by_fd:
                    continue
                try:
                    frame, addr = by_fd[fd].recvfrom(64)
                except OSError:
                    continue
                if addr[2] == PACKET_OUTGOING or len(frame) < 12:
                    continue
                self.seen(frame[6:12].hex(":"), addr[0])
            if parked:
                self.check_parked()
            if self.watched and time.monotonic() - self.last_check >= WATCH_EVERY:
                self.last_check = time.monotonic()
                self.check()

    def check_parked(self) -> None:
        """Each parked target link: gone (the migration failed or was cancelled: its pod ended), or its guest wrote
        a frame to it (it runs here now: set it up, announce it)."""
        with self.registry.lock:
            parked = list(self.registry.parked.items())
        for (netns, ifname), (mac, lower, base) in parked:
            state = self.links.state(netns, ifname, mac)
            if state is None:
                if not os.path.exists(netns):
                    self.registry.unpark(netns, ifname)
                continue  # still there but unreadable now: read again next time
            is_up, now = state
            # Up already: someone else set it up (the runtime, an admin); it is in the L2 domain all the same.
            if now <= base and not is_up:
                continue
            self.registry.unpark(netns, ifname)
            if not is_up and not self.links.up(netns, ifname, mac):
                continue
            self.registry.attach(mac, netns, ifname, lower)
            self._event("target-up", mac, netns, ifname)  # its time: when it went up
            self.links.announce(netns, ifname, mac)
            self.on_target_up()
            self.tell(self.registry.pod_of(netns), TARGET_UP,
                      f"the guest runs on this node now (it wrote to its parked target link {ifname}): {ifname} is "
                      f"up with {mac} and announced on the LAN")
            log.info("migration target: the guest writes to %s in %s (%d frames to the parked link): set up and %s "
                     "announced", ifname, netns, now - base, mac)

    def seen(self, mac: str, interface: str) -> None:
        where = self.registry.attached_to(mac)
        # From the LAN means on the link's own lower device: another interface of the node (a macvlan shim the
        # node talks to its VMs through, docs/vm-on-the-wire.md) receives the VM's frames locally, not from the LAN.
        if where is None or where[2] != interface:
            return
        netns, ifname, lower = where
        dropped = self.links.down(netns, ifname, mac)
        if dropped is None:
            return
        self.registry.detach(netns, ifname)
        self.registry.hand_off(netns, ifname)
        self.watched[(netns, ifname)] = Watched(mac, netns, ifname, lower, dropped, time.monotonic())
        self._event("handoff", mac, netns, ifname)
        self.on_handoff()
        self.tell(self.registry.pod_of(netns), HANDOFF,
                  f"{mac} announced from the LAN on {interface}: the VM runs on another node now, so this node set "
                  f"its source link {ifname} down (this node's other VMs reach it there)")
        log.info("hand-off: %s announced from the LAN on %s (the VM runs on another node now): %s in %s set "
                 "down, so this node's other VMs reach it there", mac, interface, ifname, netns)

    def check(self) -> None:
        """Each watched link: gone (its pod ended: the hand-off is over), or its guest still writes (set it up)."""
        for key, w in list(self.watched.items()):
            state = self.links.state(w.netns, w.ifname, w.mac)
            now = state[1] if state is not None else None
            if now is None:
                del self.watched[key]
                self.registry.hand_off(w.netns, w.ifname, False)
            elif now - w.dropped >= REVERT_AFTER:
                del self.watched[key]
                self.registry.hand_off(w.netns, w.ifname, False)
                if not self.links.up(w.netns, w.ifname, w.mac):
                    continue
                self.registry.attach(w.mac, w.netns, w.ifname, w.lower)
                self._event("reverted", w.mac, w.netns, w.ifname)
                self.on_revert()
                self.tell(self.registry.pod_of(w.netns), REVERTED,
                          f"hand-off undone: the guest still writes to {w.ifname} on this node "
                          f"({now - w.dropped} frames to the down link), so it is up again with {w.mac}: the "
                          "announcement came from elsewhere (a duplicate MAC on the LAN, or a migration that failed "
                          "after its guest announced)")
                log.warning("hand-off reverted: %s in %s is up again — its guest still runs on this node (%d frames "
                            "written to the down link in %.1fs): the announcement of %s came from elsewhere, a "
                            "duplicate MAC on the LAN or a migration that failed after it", w.ifname, w.netns,
                            now - w.dropped, time.monotonic() - w.since, w.mac)

    def _event(self, kind: str, mac: str, netns: str, ifname: str) -> None:
        at = datetime.datetime.now(datetime.UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")
        self.events.append({"event": kind, "mac": mac, "netns": netns, "ifname": ifname, "time": at})

    def recent(self) -> list[dict[str, Any]]:
        """The last hand-offs and reverts, oldest first (the node report's `handoffs`)."""
        return list(self.events)

    def stop(self) -> None:
        os.write(self.stop_w, b"x")
        self.join(timeout=5)
        for sock in self.socks:
            sock.close()
        for fd in (self.stop_r, self.stop_w, self.wake_r, self.wake_w):
            os.close(fd)


class NamespaceLinks:
    """Links in pods' network namespaces, by netlink (agent/netlink)."""

    def down(self, netns: str, ifname: str, mac: str) -> int | None:
        link = self._with(netns, ifname, mac, "down")
        return link.tx_dropped if link is not None else None

    def state(self, netns: str, ifname: str, mac: str) -> tuple[bool, int] | None:
        link = self._with(netns, ifname, mac, None)
        return (link.up, link.tx_dropped) if link is not None else None

    def up(self, netns: str, ifname: str, mac: str) -> bool:
        return self._with(netns, ifname, mac, "up") is not None

    def announce(self, netns_path: str, ifname: str, mac: str) -> None:
        from macvtapctl.agent.netlink import netns

        try:
            fd = os.open(netns_path, os.O_RDONLY)
        except OSError:
            return
        try:
            with netns.entered(fd):  # the socket stays in the pod's namespace once made there
                sock = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(ETH_P_RARP))
            with sock:
                sock.bind((ifname, 0))
                sock.send(rarp(mac))
        except OSError as exc:  # QEMU's own later announcements still go out
            log.warning("migration target: cannot announce %s from %s in %s: %s", mac, ifname, netns_path, exc)
        finally:
            os.close(fd)

    @staticmethod
    def _with(netns_path: str, ifname: str, mac: str, change: str | None) -> Link | None:
        """The link as it was read (before the change), or None when it is gone or cannot be read."""
        from macvtapctl.agent.netlink import in_namespace

        try:
            fd = os.open(netns_path, os.O_RDONLY)
        except OSError:
            return None  # the pod's namespace is gone
        try:
            with in_namespace(fd) as pod:
                link = pod.find(ifname)
                if link is None or link.kind != "macvtap" or link.mac.lower() != mac.lower():
                    return None
                if change == "down":
                    pod.set_down(link.index)
                elif change == "up":
                    pod.set_up(link.index)
                return link
        except Exception:
            log.exception("hand-off: cannot read or set %s in %s", ifname, netns_path)
            return None
        finally:
            os.close(fd)


def rarp(mac: str) -> bytes:
    """A broadcast RARP request from the MAC, as QEMU sends after a migration (qemu_announce_self): Ethernet
    header, then hardware type 1, protocol IPv4, lengths 6 and 4, opcode 3, the MAC as sender and target with
    zero addresses, padded to the 60-byte minimum."""
    m = bytes.fromhex(mac.replace(":", ""))
    frame = b"\xff" * 6 + m + ETH_P_RARP.to_bytes(2, "big")
    frame += b"\x00\x01\x08\x00\x06\x04\x00\x03" + m + bytes(4) + m + bytes(4)
    return frame.ljust(60, b"\x00")
