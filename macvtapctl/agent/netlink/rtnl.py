"""A minimal RTNL link-message parser: only what the link watcher needs (name, index, flags, kind).

pyroute2 decodes every attribute of every event (statistics, AF_SPEC, ...), ~1 ms each in Python; every
allocation and CNI call produces several link events, so the watcher parses them itself. Pure; unit-tested.
"""

from __future__ import annotations

import struct
from collections.abc import Iterator
from dataclasses import dataclass

RTM_NEWLINK = 16
RTM_DELLINK = 17
RTM_GETLINK = 18
NLMSG_ERROR = 2
NLMSG_DONE = 3
NLM_F_REQUEST = 0x1
NLM_F_DUMP = 0x300
RTMGRP_LINK = 0x1
IFLA_IFNAME = 3
IFLA_TXQLEN = 13
IFLA_LINKINFO = 18
IFLA_INFO_KIND = 1

_NLMSGHDR = struct.Struct("=IHHII")
_IFINFOMSG = struct.Struct("=BxHiII")


@dataclass(frozen=True)
class LinkMsg:
    event: int  # RTM_NEWLINK or RTM_DELLINK
    index: int
    flags: int
    name: str
    kind: str
    txqlen: int = 0


def _attrs(buf: bytes, start: int, end: int) -> Iterator[tuple[int, bytes]]:
    pos = start
    while pos + 4 <= end:
        length, kind = struct.unpack_from("=HH", buf, pos)
        if length < 4 or pos + length > end:
            return
        yield kind & 0x3FFF, buf[pos + 4:pos + length]  # drop NLA_F_NESTED / NLA_F_NET_BYTEORDER
        pos += (length + 3) & ~3


def _cstr(data: bytes) -> str:
    return data.split(b"\0", 1)[0].decode("utf-8", "replace")


def parse(buf: bytes) -> Iterator[LinkMsg | int]:
    """Yield a LinkMsg per RTM_NEWLINK/RTM_DELLINK, and NLMSG_DONE / NLMSG_ERROR as bare ints."""
    pos = 0
    while pos + _NLMSGHDR.size <= len(buf):
        length, mtype, _flags, _seq, _pid = _NLMSGHDR.unpack_from(buf, pos)
        if length < _NLMSGHDR.size or pos + length > len(buf):
            return
        body = pos + _NLMSGHDR.size
        if mtype in (NLMSG_DONE, NLMSG_ERROR):
            yield mtype
        elif mtype in (RTM_NEWLINK, RTM_DELLINK) and body + _IFINFOMSG.size <= pos + length:
            _family, _type, index, flags, _change = _IFINFOMSG.unpack_from(buf, body)
            name, kind, txqlen = "", "", 0
            for attr, data in _attrs(buf, body + _IFINFOMSG.size, pos + length):
                if attr == IFLA_IFNAME:
                    name = _cstr(data)
                elif attr == IFLA_TXQLEN and len(data) >= 4:
                    (txqlen,) = struct.unpack_from("=I", data)
                elif attr == IFLA_LINKINFO:
                    for sub, subdata in _attrs(data, 0, len(data)):
                        if sub == IFLA_INFO_KIND:
                            kind = _cstr(subdata)
            yield LinkMsg(mtype, index, flags, name, kind, txqlen)
        pos += (length + 3) & ~3


def dump_request(seq: int = 1) -> bytes:
    body = _IFINFOMSG.pack(0, 0, 0, 0, 0)
    return _NLMSGHDR.pack(_NLMSGHDR.size + len(body), RTM_GETLINK, NLM_F_REQUEST | NLM_F_DUMP, seq, 0) + body


# --- a tiny synchronous client for the device plugin's Allocate (two round trips, no pyroute2) ---

IFLA_LINK = 5
IFLA_INFO_DATA = 2
IFLA_MACVLAN_MODE = 1
NLA_F_NESTED = 0x8000
NLM_F_ACK = 0x4
NLM_F_ECHO = 0x8
NLM_F_EXCL = 0x200
NLM_F_CREATE = 0x400
IFF_UP = 0x1
MACVTAP_MODES = {"private": 1, "vepa": 2, "bridge": 4, "passthru": 8}


def _attr(kind: int, payload: bytes) -> bytes:
    raw = struct.pack("=HH", 4 + len(payload), kind) + payload
    return raw + b"\0" * ((4 - len(raw) % 4) % 4)


def _msg(mtype: int, flags: int, seq: int, body: bytes) -> bytes:
    return _NLMSGHDR.pack(_NLMSGHDR.size + len(body), mtype, flags, seq, 0) + body


def newlink_macvtap(seq: int, name: str, lower_index: int, mode: str, txqlen: int) -> bytes:
    """RTM_NEWLINK creating an UP macvtap (NLM_F_ECHO: the kernel answers with the new link)."""
    info = _attr(IFLA_INFO_KIND, b"macvtap\0") + _attr(
        IFLA_INFO_DATA | NLA_F_NESTED, _attr(IFLA_MACVLAN_MODE, struct.pack("=I", MACVTAP_MODES[mode])))
    attrs = _attr(IFLA_IFNAME, name.encode() + b"\0") + _attr(IFLA_LINK, struct.pack("=I", lower_index))
    if txqlen:
        attrs += _attr(IFLA_TXQLEN, struct.pack("=I", txqlen))  # never 0: a zero queue drops every frame
    attrs += _attr(IFLA_LINKINFO | NLA_F_NESTED, info)
    body = _IFINFOMSG.pack(0, 0, 0, IFF_UP, IFF_UP) + attrs
    return _msg(RTM_NEWLINK, NLM_F_REQUEST | NLM_F_ACK | NLM_F_ECHO | NLM_F_CREATE | NLM_F_EXCL, seq, body)


def dellink(seq: int, name: str) -> bytes:
    body = _IFINFOMSG.pack(0, 0, 0, 0, 0) + _attr(IFLA_IFNAME, name.encode() + b"\0")
    return _msg(RTM_DELLINK, NLM_F_REQUEST | NLM_F_ACK, seq, body)


def getlink(seq: int, name: str) -> bytes:
    body = _IFINFOMSG.pack(0, 0, 0, 0, 0) + _attr(IFLA_IFNAME, name.encode() + b"\0")
    return _msg(RTM_GETLINK, NLM_F_REQUEST, seq, body)


def error_of(buf: bytes) -> int | None:
    """The errno of the first NLMSG_ERROR in buf (0 = ACK), or None when there is none."""
    pos = 0
    while pos + _NLMSGHDR.size <= len(buf):
        length, mtype, _f, _s, _p = _NLMSGHDR.unpack_from(buf, pos)
        if length < _NLMSGHDR.size:
            return None
        if mtype == NLMSG_ERROR and pos + _NLMSGHDR.size + 4 <= len(buf):
            err = int(struct.unpack_from("=i", buf, pos + _NLMSGHDR.size)[0])
            return -err
        pos += (length + 3) & ~3
    return None


def seq_of(buf: bytes) -> int | None:
    """The sequence number of the first message in buf (what a reply echoes from its request)."""
    if len(buf) < _NLMSGHDR.size:
        return None
    return int(_NLMSGHDR.unpack_from(buf, 0)[3])
