"""The agent's netlink stack on real links: what it reads equals pyroute2's full decoding, and its requests do
what `ip` then shows."""

from __future__ import annotations

import os

from macvtapctl.agent.netlink import BlockingNetlink, Link, codec, host, in_namespace, netns
from tests.datapath.helpers import Node, ip


def _pyroute2_view(msg: object) -> Link:
    """The same fields, from pyroute2's own decoding of every attribute."""
    get = msg.get_attr  # type: ignore[attr-defined]
    info = get("IFLA_LINKINFO")
    flags = int(msg["flags"])  # type: ignore[index]
    return Link(index=int(msg["index"]), name=str(get("IFLA_IFNAME")),  # type: ignore[index]
                kind=str((info.get_attr("IFLA_INFO_KIND") if info is not None else "") or ""),
                mtu=int(get("IFLA_MTU") or 0), mac=str(get("IFLA_ADDRESS") or "").lower(),
                up=bool(flags & 1), promisc=bool(flags & 0x100), lower_index=int(get("IFLA_LINK") or 0) or None,
                txqlen=int(get("IFLA_TXQLEN") or 0), alias=str(get("IFLA_IFALIAS") or ""),
                loopback=bool(flags & 8))


def test_reading_equals_pyroute2_decoding_for_every_link_kind(node: Node) -> None:
    from pyroute2 import IPRoute

    tmp = node.allocate("netlinkMvp0", mode="vepa")
    extra = [f"ml{node.tag}", f"br{node.tag}"]  # (this kernel has no vlan or dummy modules)
    ip("link", "add", extra[0], "link", node.lower, "type", "macvlan", "mode", "bridge")
    ip("link", "add", extra[1], "type", "bridge")
    ip("link", "set", extra[1], "alias", "a link with an alias", "promisc", "on", "mtu", "9000")
    try:
        ours = {link.index: link for link in host().links()}
        with IPRoute() as ipr:
            theirs = {int(m["index"]): _pyroute2_view(m) for m in ipr.get_links()}
        common = ours.keys() & theirs.keys()  # (a link another process adds between the two dumps is not compared)
        assert {ours[i].name for i in common} >= {tmp, node.lower, *extra, "lo"}
        assert {i: ours[i] for i in common} == {i: theirs[i] for i in common}
        for name in (tmp, node.lower, *extra, "lo"):
            one = host().find(name)
            assert one is not None and one == theirs[one.index], name
        assert {ours[i].kind for i in ours} >= {"macvtap", "veth", "macvlan", "bridge"}
        bridge = host().find(extra[1])
        assert bridge is not None and (bridge.alias, bridge.promisc, bridge.mtu) == ("a link with an alias", True, 9000)
    finally:
        for name in extra:
            ip("link", "del", name, check=False)
        ip("link", "del", tmp, check=False)


def test_move_configure_and_delete_in_a_pod_namespace(node: Node) -> None:
    tmp = node.allocate("netlinkMvp1")
    link = host().find(tmp)
    assert link is not None and link.kind == "macvtap"
    fd = netns.open_netns(node.pod_path)
    try:
        with in_namespace(fd) as pod:
            host().move_to(link.index, fd, name=tmp)
            moved = pod.find(tmp)
            assert moved is not None and host().find(tmp) is None
            pod.configure(moved.index, name="net1", mtu=1400, mac="02:00:00:aa:bb:cc", promisc=True, alias=tmp)
            shown = node.pod_link("net1")
            assert shown is not None
            assert (shown["mtu"], shown["address"], shown["ifalias"]) == (1400, "02:00:00:aa:bb:cc", tmp)
            assert "UP" in shown["flags"] and "PROMISC" in shown["flags"]
            pod.move_to(moved.index, netns.host_netns_fd(), name=tmp)
            back = host().find(tmp)
            assert back is not None and not back.up and pod.find("net1") is None
            host().delete(back.index)
            host().delete(back.index)  # gone already: not an error
            assert host().find(tmp) is None
    finally:
        os.close(fd)


def test_errors_carry_the_errno(node: Node) -> None:
    nl: BlockingNetlink = host()
    try:
        nl.move_to(2**31 - 1, netns.host_netns_fd(), name="nosuchlink0")
    except Exception as exc:
        assert getattr(exc, "code", None) == 19  # ENODEV
    else:
        raise AssertionError("moving a link that does not exist succeeded")
    assert nl.find("nosuchlink0") is None and nl.get(2**31 - 1) is None
    made = nl.create_macvtap(f"mvtchk{node.tag}", nl.find(node.lower).index, "bridge", 500)  # type: ignore[union-attr]
    try:
        assert (made.kind, made.txqlen, made.up) == ("macvtap", 500, False)
        assert codec.error_of(codec.newlink_macvtap(1, made.name, 1, "bridge", 0)) is None  # a request, not an error
    finally:
        nl.delete(made.index)
