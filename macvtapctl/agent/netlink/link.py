"""The one link type every room of the agent uses."""

from __future__ import annotations

from dataclasses import dataclass

IFF_UP = 0x1
IFF_LOOPBACK = 0x8
IFF_PROMISC = 0x100


@dataclass(frozen=True)
class Link:
    index: int
    name: str
    kind: str
    mtu: int
    mac: str
    up: bool
    promisc: bool
    lower_index: int | None
    txqlen: int
    alias: str = ""
    loopback: bool = False
    tx_dropped: int = 0  # frames the kernel dropped on send: on a down macvtap, what its guest still writes

    def is_physical(self, *, veth_is_physical: bool = False) -> bool:
        """A NIC or a bond, as upstream's `[]` mode exposes (not loopback, veth, bridge, VLAN, macvlan, tunnels)."""
        if self.loopback:
            return False
        if self.kind in ("", "bond"):
            return True
        return veth_is_physical and self.kind == "veth"
