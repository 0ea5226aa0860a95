"""`doctor --probe-dhcp RESOURCE`: does a DHCP server answer on the resource's L2 network? (pain point 15: "the VM
got no IP" where the NAD has no IPAM and the guest asks DHCP on the LAN.)

A throwaway macvtap on the lower device (named like the node check's test link, so a killed probe's link is
removed the same way) sends one DHCPDISCOVER from its own MAC, with the broadcast flag so the offer comes back to
ff:ff:ff:ff:ff:ff, and waits for a DHCPOFFER with its transaction id. The frames go through a packet socket bound
to the macvtap (CAP_NET_RAW), not its /dev/tapN: the agent is not privileged, and its device cgroup refuses
opening a tap. Read-only for the cluster; the link is deleted before the answer is returned. Frames are built
here: four fixed headers (RFC 2131, RFC 791, RFC 768), smaller than a dependency.
"""

from __future__ import annotations

import secrets
import select
import socket
import struct
import threading
import time
from dataclasses import asdict, dataclass
from typing import Any

from macvtapctl.agent.check import CHECK_LINK_PREFIX
from macvtapctl.agent.netlink import BlockingNetlink

BOOTREQUEST, BOOTREPLY = 1, 2
DHCPDISCOVER, DHCPOFFER = 1, 2
MAGIC = b"\x63\x82\x53\x63"
MAX_TIMEOUT = 10.0
ETH_P_IP = 0x0800
_one_at_a_time = threading.Lock()  # the health port is on the node's address: never more than one throwaway link


@dataclass(frozen=True)
class Offer:
    lower: str
    offered: bool
    server: str | None = None  # the offer's server identifier (option 54), else its IP source
    address: str | None = None  # yiaddr
    detail: str = ""

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def _checksum(data: bytes) -> int:
    if len(data) % 2:
        data += b"\0"
    total: int = sum(struct.unpack(f"!{len(data) // 2}H", data))
    while total >> 16:
        total = (total & 0xFFFF) + (total >> 16)
    return ~total & 0xFFFF


def discover(mac: bytes, xid: int) -> bytes:
    """One Ethernet frame: DHCPDISCOVER from 0.0.0.0:68 to 255.255.255.255:67, broadcast flag set."""
    bootp = struct.pack("!BBBBIHH4s4s4s4s16s64s128s", BOOTREQUEST, 1, 6, 0, xid, 0, 0x8000, b"\0" * 4, b"\0" * 4,
                        b"\0" * 4, b"\0" * 4, mac.ljust(16, b"\0"), b"", b"")
    options = MAGIC + bytes([53, 1, DHCPDISCOVER, 55, 3, 1, 3, 54, 255])
    payload = bootp + options
    udp = struct.pack("!HHHH", 68, 67, 8 + len(payload), 0) + payload  # UDP checksum 0: none (IPv4 allows it)
    ip = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + len(udp), 0, 0, 64, 17, 0, b"\0" * 4, b"\xff" * 4)
    ip = ip[:10] + struct.pack("!H", _checksum(ip)) + ip[12:]
    return b"\xff" * 6 + mac + b"\x08\x00" + ip + udp


def parse_offer(frame: bytes, xid: int) -> tuple[str, str] | None:
    """(server, offered address) if the frame is a DHCPOFFER for this transaction, else None."""
    if len(frame) < 14 + 20 + 8 + 240 or frame[12:14] != b"\x08\x00":
        return None
    ihl = (frame[14] & 0x0F) * 4
    ip, udp = frame[14:14 + ihl], frame[14 + ihl:]
    if ip[9] != 17 or struct.unpack("!H", udp[2:4])[0] != 68:
        return None
    bootp = udp[8:]
    if bootp[0] != BOOTREPLY or struct.unpack("!I", bootp[4:8])[0] != xid or bootp[236:240] != MAGIC:
        return None
    yiaddr = ".".join(str(b) for b in bootp[16:20])
    server = ".".join(str(b) for b in ip[12:16])
    kind = None
    opts, i = bootp[240:], 0
    while i < len(opts) and opts[i] != 255:
        if opts[i] == 0:
            i += 1
            continue
        code, length = opts[i], opts[i + 1] if i + 1 < len(opts) else 0
        value = opts[i + 2:i + 2 + length]
        if code == 53 and length == 1:
            kind = value[0]
        elif code == 54 and length == 4:
            server = ".".join(str(b) for b in value)
        i += 2 + length
    return (server, yiaddr) if kind == DHCPOFFER else None


def probe(h: BlockingNetlink, lower: str, *, timeout: float = 8.0) -> Offer:
    """One DISCOVER on a throwaway macvtap of `lower`; the link is gone when this returns. The default wait covers
    servers that ping an address before offering it (dnsmasq waits 3 s)."""
    timeout = min(max(timeout, 0.5), MAX_TIMEOUT)
    if not _one_at_a_time.acquire(blocking=False):
        return Offer(lower, False, detail="another probe is running on this node")
    try:
        link = h.find(lower)
        if link is None:
            return Offer(lower, False, detail=f"{lower} does not exist on this node")
        name = CHECK_LINK_PREFIX + secrets.token_hex(4)
        tap = h.create_macvtap(name, link.index, "bridge", link.txqlen, up=True)
        try:
            with socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(ETH_P_IP)) as sock:
                sock.bind((name, 0))
                xid = secrets.randbits(32)
                sock.send(discover(bytes.fromhex(tap.mac.replace(":", "")), xid))
                deadline = time.monotonic() + timeout
                while (left := deadline - time.monotonic()) > 0:
                    ready, _, _ = select.select([sock], [], [], left)
                    if not ready:
                        break
                    got = parse_offer(sock.recv(65536), xid)
                    if got:
                        return Offer(lower, True, server=got[0], address=got[1],
                                     detail=f"offer of {got[1]} from {got[0]}")
        finally:
            h.delete(tap.index)
        return Offer(lower, False, detail=f"no DHCP offer on {lower} within {timeout:.0f}s")
    finally:
        _one_at_a_time.release()
