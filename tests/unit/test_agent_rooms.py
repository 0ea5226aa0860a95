"""The agent's pure parts, without root or a kubelet: the link watcher's state machine and the config source."""

from __future__ import annotations

from pathlib import Path

from macvtapctl.agent.deviceplugin.config_source import ConfigSource
from macvtapctl.agent.deviceplugin.links import LinkWatcher
from macvtapctl.agent.netlink import codec


def event(mtype: int, index: int, name: str, kind: str = "", flags: int = 0) -> codec.Raw:
    """A kernel link event as bytes (pyroute2-encoded), through the pre-filter."""
    from pyroute2.netlink.rtnl.ifinfmsg import ifinfmsg

    msg = ifinfmsg()
    msg["header"]["type"] = mtype
    msg["index"], msg["flags"] = index, flags
    attrs: list[object] = [("IFLA_IFNAME", name)]
    if kind:
        attrs.append(("IFLA_LINKINFO", {"attrs": [("IFLA_INFO_KIND", kind)]}))
    msg["attrs"] = attrs
    msg.encode()
    return next(codec.messages(bytes(msg.data)))


def new(index: int, name: str, kind: str = "", flags: int = 0) -> codec.Raw:
    return event(codec.RTM_NEWLINK, index, name, kind, flags)


def gone(index: int, name: str) -> codec.Raw:
    return event(codec.RTM_DELLINK, index, name)


def test_the_link_watcher_reconciles_on_set_changes_only(monkeypatch) -> None:
    decoded: list[str] = []
    real = codec.decode
    monkeypatch.setattr(codec, "decode", lambda raw: decoded.append(raw.name) or real(raw))
    w = LinkWatcher(lambda: None)
    assert w.handle(new(2, "eth0")) is True
    assert w.handle(new(2, "eth0")) is False and decoded == ["eth0"]  # nothing new: not even decoded
    assert w.handle(new(2, "eth0", flags=1)) is False  # up: the same set of links
    assert w.handle(new(7, "mvt0123456789ab", "macvtap")) is False  # allocations are quiet
    assert w.handle(new(2, "lan0", flags=1)) is True  # renamed
    assert set(w.links) == {"lan0", "mvt0123456789ab"} and w.by_index[2] == "lan0"
    assert w.handle(gone(7, "mvt0123456789ab")) is False
    assert w.handle(gone(2, "lan0")) is True
    assert w.handle(gone(99, "never-seen")) is False
    assert w.links == {}


def test_physical_means_a_nic_or_a_bond() -> None:
    w = LinkWatcher(lambda: None)
    for i, (name, kind, flags) in enumerate([("lo", "", 0x8), ("eth0", "", 0), ("bond0", "bond", 0),
                                            ("veth1", "veth", 0), ("br0", "bridge", 0), ("eth0.100", "vlan", 0)]):
        w.handle(new(i + 1, name, kind, flags))
    assert w.physical() == ["bond0", "eth0"]
    assert w.physical(veth_is_physical=True) == ["bond0", "eth0", "veth1"]


def test_the_config_source_keeps_the_last_good_configuration(tmp_path: Path) -> None:
    seen: list[object] = []
    path = tmp_path / "DP_MACVTAP_CONF"
    path.write_text('[{"name": "dp", "lowerDevice": "eth0", "capacity": 2}]')
    src = ConfigSource(path=str(path), on_read=seen.append)
    assert src.read() is True and [e.name for e in src.entries or []] == ["dp"]
    assert src.read() is False  # unchanged text: nothing to do
    path.write_text('[{"name": "dp"')  # truncated
    assert src.read() is False and [e.name for e in src.entries or []] == ["dp"]
    assert src.problems and "not valid JSON" in src.problems[0] and seen[-1] is None
    path.write_text('[{"name": "dp", "master": "eth0"}]')
    assert src.read() is True and src.entries == [] and "master" in src.problems[0]


def test_without_a_readable_file_nothing_is_served_and_that_is_said(tmp_path: Path) -> None:
    src = ConfigSource(path=str(tmp_path / "missing"))
    assert src.read() is True and src.entries == [] and not src.expose_all


def test_only_the_netlink_room_opens_netlink_sockets() -> None:
    """One netlink room (agent/netlink/): its three clients — blocking `BlockingNetlink`, awaited `AwaitedNetlink`, the awaited link
    subscription — are the only code that opens an AF_NETLINK socket."""
    root = Path(__file__).resolve().parents[2] / "macvtapctl"
    openers = sorted(str(p.relative_to(root)) for p in root.rglob("*.py") if "AF_NETLINK" in p.read_text())
    assert openers and all(p.startswith("agent/netlink/") for p in openers), openers


class _Watch:
    """What the ConfigMap watch has seen, set by the test (the watch itself runs against the real API server in
    tests/integration/test_agent_configmap_watch.py)."""

    label = "ConfigMap macvtap/macvtap-deviceplugin-config"

    def __init__(self) -> None:
        from macvtapctl.agent.configmap_watch import Seen

        self.Seen = Seen
        self.now = Seen(listed=False, healthy=False, raw=None, why="not listed yet")

    def seen(self) -> object:
        return self.now


def test_the_source_rule_keeps_the_apis_document_through_an_outage_until_the_kubelets_copy_changes(
        tmp_path: Path) -> None:
    from macvtapctl.agent.deviceplugin.config_source import API, FILE

    def names(src: ConfigSource) -> list[str]:
        return [e.name for e in src.entries or []]

    f = tmp_path / "DP_MACVTAP_CONF"
    f.write_text('[{"name": "old", "lowerDevice": "eth0"}]')
    w = _Watch()
    src = ConfigSource(path=str(f), api=w)  # type: ignore[arg-type]
    assert src.read() and names(src) == ["old"] and src.state()["source"] == FILE  # never answered: the file
    w.now = w.Seen(listed=True, healthy=True, raw='[{"name": "new", "lowerDevice": "eth0"}]', why="")
    assert src.read() and names(src) == ["new"] and src.state() == {"source": API, "from": w.label}
    w.now = w.Seen(listed=True, healthy=False, raw=w.now.raw, why="connection refused")
    assert src.read() is False and names(src) == ["new"]  # the lagging file does not roll it back
    assert src.state()["source"] == API and "connection refused" in src.state()["detail"]
    f.write_text('[{"name": "newer", "lowerDevice": "eth0"}]')  # the kubelet reached the API server
    assert src.read() and names(src) == ["newer"] and src.state()["source"] == FILE
    w.now = w.Seen(listed=True, healthy=True, raw='[{"name": "newer", "lowerDevice": "eth0"}]', why="")
    assert src.read() is False and src.state()["source"] == API  # back on the API: same document, no change
    w.now = w.Seen(listed=True, healthy=True, raw=None, why=f"{w.label} does not exist")
    assert src.read() is False and names(src) == ["newer"]  # deleted: the last good configuration stays
