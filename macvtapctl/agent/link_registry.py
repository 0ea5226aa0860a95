"""The temporary mvt* links on the node, shared by the device plugin (Allocate creates them) and the CNI (ADD
attaches them, DEL gives them back, GC reclaims them): who may touch which link, under one lock."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field


class LinkBusy(Exception):
    """Another call is attaching this link right now (the CNI answers "try again later")."""


@dataclass
class LinkRegistry:
    """The temporary mvt* links on the node: when each was allocated or first seen, and which an ADD is using.

    A link on the node belongs to its device ID for as long as the kubelet assigns that ID to a live pod: DEL
    hands a link back to the node (so a retried sandbox, which gets no new Allocate, finds it again), and only
    links no live pod owns are reclaimed. `owned` is that set of link names, from the kubelet's pod-resources
    API; None when it cannot be read, and then nothing is reclaimed: age proves nothing (a pod whose volumes
    take minutes to mount gets its ADD long after Allocate), and neither do CNI GC's valid attachments (they
    name containers, while a device outlives a failed sandbox). A link younger than `grace` is never reclaimed:
    its Allocate may have answered before the kubelet lists the pod.
    """

    grace: float = 10.0
    first_seen: dict[str, float] = field(default_factory=dict)
    # ifindex of the link the latest Allocate created per name: the /dev/tapN the kubelet handed out. Another link
    # under the same name (given back late by an old pod) is stale.
    allocated_index: dict[str, int] = field(default_factory=dict)
    busy: set[str] = field(default_factory=set)
    lock: threading.Lock = field(default_factory=threading.Lock)
    # The links ADD attached, by the MAC it gave them: (pod netns path, interface name, lower device). The
    # hand-off (agent/handoff.py) looks a MAC announced from the LAN on that lower device up here.
    attached: dict[str, tuple[str, str, str]] = field(default_factory=dict)
    # The pod (namespace, name) of each netns path, as the CNI ADD named it: the hand-off's Events say whose VM
    # moved (agent/events.py). Unknown for links adopted from another plugin.
    pods: dict[str, tuple[str, str]] = field(default_factory=dict)
    # A migration target's links attached parked, down until their guest runs here (agent/migration_target.py):
    # (pod netns path, interface name) -> (MAC, lower device, tx_dropped when parked). The hand-off watches them.
    parked: dict[tuple[str, str], tuple[str, str, int]] = field(default_factory=dict)
    # Sources the hand-off set down (agent/handoff.py), until their pod ends. With the parked links, the links the
    # agent holds down on purpose: CNI CHECK does not call them broken.
    handed_off: set[tuple[str, str]] = field(default_factory=set)
    on_park: Callable[[], None] = lambda: None  # the hand-off's wake-up: a link to watch

    def park(self, mac: str, netns: str, ifname: str, lower: str, dropped: int,
             pod: tuple[str, str] | None = None) -> None:
        with self.lock:
            self.parked[(netns, ifname)] = (mac.lower(), lower, dropped)
            if pod is not None:
                self.pods[netns] = pod
        self.on_park()

    def unpark(self, netns: str, ifname: str) -> None:
        with self.lock:
            self.parked.pop((netns, ifname), None)

    def parked_links(self) -> list[dict[str, str]]:
        """The node report's `parked`: a target link down with no migration running is doctor's to name."""
        with self.lock:
            return [{"mac": mac, "netns": netns, "ifname": ifname, "lower": lower}
                    for (netns, ifname), (mac, lower, _) in sorted(self.parked.items())]

    def hand_off(self, netns: str, ifname: str, held: bool = True) -> None:
        """The hand-off set this source link down (`held`), or stopped holding it (its pod ended, or it reverted)."""
        with self.lock:
            (self.handed_off.add if held else self.handed_off.discard)((netns, ifname))

    def is_held_down(self, netns: str, ifname: str) -> bool:
        with self.lock:
            return (netns, ifname) in self.parked or (netns, ifname) in self.handed_off

    def attach(self, mac: str, netns: str, ifname: str, lower: str, pod: tuple[str, str] | None = None) -> None:
        with self.lock:
            self.attached[mac.lower()] = (netns, ifname, lower)
            if pod is not None:
                self.pods[netns] = pod

    def pod_of(self, netns: str) -> tuple[str, str] | None:
        with self.lock:
            return self.pods.get(netns)

    def forget_netns(self, netns: str) -> None:
        """Its namespace is gone: nothing of it is kept."""
        with self.lock:
            self.pods.pop(netns, None)
            for key in [k for k in self.parked if k[0] == netns]:
                del self.parked[key]
            self.handed_off = {k for k in self.handed_off if k[0] != netns}
            for mac in [m for m, where in self.attached.items() if where[0] == netns]:
                del self.attached[mac]

    def detach(self, netns: str, ifname: str) -> None:
        """Out of the L2 domain's account (DEL, or the hand-off took it out): neither attached nor parked."""
        with self.lock:
            self.parked.pop((netns, ifname), None)
            self.handed_off.discard((netns, ifname))
            for mac in [m for m, where in self.attached.items() if where[:2] == (netns, ifname)]:
                del self.attached[mac]

    def attached_links(self) -> list[dict[str, str]]:
        """Every link in the L2 domain that ADD attached (the node report's `links`: doctor finds a stale source)."""
        with self.lock:
            return [{"mac": mac, "netns": netns, "ifname": ifname, "lower": lower}
                    for mac, (netns, ifname, lower) in sorted(self.attached.items())]

    def attached_to(self, mac: str) -> tuple[str, str, str] | None:
        with self.lock:
            return self.attached.get(mac.lower())

    def allocated(self, name: str, index: int | None = None) -> None:
        with self.lock:
            self.first_seen[name] = time.monotonic()
            if index is not None:
                self.allocated_index[name] = index

    def claim(self, name: str) -> None:
        """Mark the link as being attached; LinkBusy when another ADD already is."""
        with self.lock:
            if name in self.busy:
                raise LinkBusy(f"link {name} is being attached by another ADD")
            self.busy.add(name)

    def release(self, name: str) -> None:
        with self.lock:
            self.busy.discard(name)
            self.first_seen.pop(name, None)

    def reclaimable(self, name: str, now: float, owned: set[str] | None) -> bool:
        """Call with `lock` held."""
        if name in self.busy:
            return False
        age = now - self.first_seen.setdefault(name, now)
        return owned is not None and name not in owned and age >= self.grace
