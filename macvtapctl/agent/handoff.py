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
the seconds of watch latency on a busy node."""

from __future__ import annotations

import logging
import os
import select
import socket
import threading
from collections.abc import Callable

from macvtapctl.agent.link_registry import LinkRegistry

log = logging.getLogger(__name__)

ETH_P_ARP, ETH_P_RARP = 0x0806, 0x8035
PACKET_OUTGOING = 4  # linux/if_packet.h: sent by this host (a local guest's own announcement on a target node)


class HandOff(threading.Thread):
    """Watches the node's interfaces for ARP and RARP frames from the LAN; `set_down(netns, ifname, mac)` is called
    for a link whose MAC one of them comes from, arriving on that link's lower device."""

    def __init__(self, registry: LinkRegistry, set_down: Callable[[str, str, str], bool],
                 on_handoff: Callable[[], None] = lambda: None) -> None:
        super().__init__(name="handoff", daemon=True)
        self.registry, self.set_down, self.on_handoff = registry, set_down, on_handoff
        self.socks = [socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(proto))
                      for proto in (ETH_P_ARP, ETH_P_RARP)]
        self.stop_r, self.stop_w = os.pipe()

    def run(self) -> None:
        by_fd = {s.fileno(): s for s in self.socks}
        while True:
            ready, _, _ = select.select([*by_fd, self.stop_r], [], [])
            if self.stop_r in ready:
                return
            for fd in ready:
                try:
                    frame, addr = by_fd[fd].recvfrom(64)
                except OSError:
                    continue
                if addr[2] == PACKET_OUTGOING or len(frame) < 12:
                    continue
                self.seen(frame[6:12].hex(":"), addr[0])

    def seen(self, mac: str, interface: str) -> None:
        where = self.registry.attached_to(mac)
        # From the LAN means on the link's own lower device: another interface of the node (a macvlan shim the
        # node talks to its VMs through, docs/vm-on-the-wire.md) receives the VM's frames locally, not from the LAN.
        if where is None or where[2] != interface:
            return
        netns, ifname, _ = where
        if self.set_down(netns, ifname, mac):
            self.registry.detach(netns, ifname)
            self.on_handoff()
            log.info("hand-off: %s announced from the LAN on %s (the VM runs on another node now): %s in %s set "
                     "down, so this node's other VMs reach it there", mac, interface, ifname, netns)

    def stop(self) -> None:
        os.write(self.stop_w, b"x")
        self.join(timeout=5)
        for sock in self.socks:
            sock.close()
        os.close(self.stop_r)
        os.close(self.stop_w)


def set_link_down(netns_path: str, ifname: str, mac: str) -> bool:
    """Down, if that pod's interface is still there with that MAC (the pod may have ended meanwhile)."""
    from macvtapctl.agent.netlink import in_namespace

    try:
        fd = os.open(netns_path, os.O_RDONLY)
    except OSError:
        return False
    try:
        with in_namespace(fd) as pod:
            link = pod.find(ifname)
            if link is None or link.kind != "macvtap" or link.mac.lower() != mac.lower():
                return False
            pod.set_down(link.index)
            return True
    except Exception:
        log.exception("hand-off: cannot set %s in %s down", ifname, netns_path)
        return False
    finally:
        os.close(fd)
