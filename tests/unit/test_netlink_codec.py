"""The raw-socket side of the agent's netlink stack: pyroute2-encoded requests, the pre-filter, decoding (pure)."""

from __future__ import annotations

import struct

from hypothesis import given
from hypothesis import strategies as st

from macvtapctl.agent.netlink import codec


def test_newlink_round_trip_through_the_pre_filter_and_pyroute2() -> None:
    raw = codec.newlink_macvtap(7, "mvt0123456789ab", 42, "bridge", 1000)
    (msg,) = list(codec.messages(raw))
    assert (msg.type, msg.seq, msg.name, msg.flags) == (codec.RTM_NEWLINK, 7, "mvt0123456789ab", codec.IFF_UP)
    link = codec.decode(msg)
    assert (link.name, link.kind, link.txqlen, link.lower_index, link.up) == ("mvt0123456789ab", "macvtap", 1000,
                                                                               42, True)
    length, mtype, flags, seq, _ = struct.unpack_from("=IHHII", raw)
    assert (length, mtype, seq) == (len(raw), codec.RTM_NEWLINK, 7)
    assert flags & codec.NLM_F_CREATE and flags & codec.NLM_F_EXCL and flags & codec.NLM_F_ECHO


def test_modes_are_the_kernels() -> None:
    for mode, value in (("private", 1), ("vepa", 2), ("bridge", 4), ("passthru", 8)):  # if_link.h MACVLAN_MODE_*
        raw = codec.newlink_macvtap(1, "x", 1, mode, 0)
        assert raw.endswith(struct.pack("=HHI", 8, 1, value)), mode  # IFLA_MACVLAN_MODE, last in the message
    assert struct.pack("=HH", 8, 13) not in codec.newlink_macvtap(1, "x", 1, "vepa", 0)  # txqlen 0 never sent


def test_error_and_done() -> None:
    err = struct.pack("=IHHII", 36, codec.NLMSG_ERROR, 0, 1, 0) + struct.pack("=i", -19) + bytes(16)
    assert codec.error_of(err) == 19 and codec.seq_of(err) == 1
    ack = struct.pack("=IHHII", 36, codec.NLMSG_ERROR, 0, 1, 0) + struct.pack("=i", 0) + bytes(16)
    assert codec.error_of(ack) == 0
    done = struct.pack("=IHHII", 20, codec.NLMSG_DONE, 0, 1, 0) + bytes(4)
    assert [m.type for m in codec.messages(done)] == [codec.NLMSG_DONE]
    assert codec.error_of(done) is None


def test_dellink_and_getlink_carry_the_name() -> None:
    for raw in (codec.dellink(3, "mvtabc"), codec.getlink(3, "mvtabc")):
        assert b"mvtabc\0" in raw
        assert struct.unpack_from("=I", raw)[0] == len(raw)


@given(st.binary(max_size=400))
def test_the_pre_filter_never_crashes_on_garbage(data: bytes) -> None:
    list(codec.messages(data))
    codec.error_of(data)
    codec.seq_of(data)


@given(st.text(alphabet=st.characters(min_codepoint=33, max_codepoint=126), min_size=1, max_size=15),
       st.integers(min_value=1, max_value=2**31 - 1), st.sampled_from(codec.MACVTAP_MODES),
       st.integers(min_value=0, max_value=10000), st.booleans(), st.integers(min_value=0, max_value=2**32 - 1))
def test_newlink_from_its_template_is_what_pyroute2_encodes(name: str, lower: int, mode: str, txqlen: int,
                                                             up: bool, seq: int) -> None:
    from pyroute2.netlink.rtnl.ifinfmsg import ifinfmsg

    msg = ifinfmsg()
    msg["header"]["type"] = codec.RTM_NEWLINK
    msg["header"]["flags"] = (codec.NLM_F_REQUEST | codec.NLM_F_ACK | codec.NLM_F_ECHO | codec.NLM_F_CREATE
                              | codec.NLM_F_EXCL)
    msg["header"]["sequence_number"] = seq
    msg["flags"] = msg["change"] = codec.IFF_UP if up else 0
    attrs: list[object] = [("IFLA_IFNAME", name), ("IFLA_LINK", lower)]
    if txqlen:
        attrs.append(("IFLA_TXQLEN", txqlen))
    attrs.append(("IFLA_LINKINFO", {"attrs": [("IFLA_INFO_KIND", "macvtap"),
                                              ("IFLA_INFO_DATA", {"attrs": [("IFLA_MACVTAP_MODE", mode)]})]}))
    msg["attrs"] = attrs
    msg.encode()
    assert codec.newlink_macvtap(seq, name, lower, mode, txqlen, up=up) == bytes(msg.data)


def test_tx_dropped_is_read_from_the_64_bit_counters() -> None:
    """IFLA_STATS64's eighth counter, as pyroute2 encodes the kernel's struct rtnl_link_stats64 (the hand-off
    watches it: what a guest writes to its down macvtap)."""
    from pyroute2.netlink.rtnl.ifinfmsg import ifinfmsg

    msg = ifinfmsg()
    msg["header"]["type"] = codec.RTM_NEWLINK
    msg["index"] = 9
    msg["attrs"] = [("IFLA_IFNAME", "net1"), ("IFLA_STATS64", {"tx_dropped": 2**40 + 3, "rx_dropped": 5,
                                                                "tx_errors": 11})]
    msg.encode()
    (raw,) = list(codec.messages(bytes(msg.data)))
    link = codec.decode(raw)
    assert (link.name, link.tx_dropped) == ("net1", 2**40 + 3)
