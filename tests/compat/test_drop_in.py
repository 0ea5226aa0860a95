"""The agent beside the real upstream kubevirt/macvtap-cni: same inputs, compared row by row (`make compat`).

Upstream is built from the vendored source in ../shared/upstream (tests/compat/build.sh). Its device plugin
hard-codes /var/lib/kubelet/device-plugins, so it runs in a private mount namespace where that path is a bind
mount of a temporary directory, served by the same kubelet stand-in (tests/harness/kubelet.py) as the agent.
Nothing here is part of `make test`: a clone without ../shared still passes that.
"""

from __future__ import annotations

import json
import os
import secrets
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from macvtapctl.agent.link_name import temporary_link_name
from tests.datapath.helpers import host_mvt_links, ip, returned_links
from tests.harness.upstream import PREFIX, DevicePlugin, build_upstream

REPO = Path(__file__).resolve().parents[2]
UPSTREAM_SETTLE = 25.0  # upstream's device-plugin manager waits 10 s before it registers


@pytest.fixture(scope="module")
def upstream() -> Path:
    return build_upstream()


@pytest.fixture(scope="module")
def shim() -> Path:
    subprocess.run(["make", "-s", "-C", str(REPO), "shim"], check=True)
    return REPO / "macvtapctl/agent/shim/macvtap"


@pytest.fixture
def tmp_path() -> Iterator[Path]:
    """Short: unix socket paths (the kubelet's plus the plugins' names) must fit in 108 bytes."""
    import shutil
    import tempfile

    path = Path(tempfile.mkdtemp(prefix="mvc", dir="/tmp"))
    yield path
    shutil.rmtree(path, ignore_errors=True)


@dataclass
class Lan:
    lower: str
    missing: str  # a lower device name that does not exist
    pod: str

    @property
    def pod_path(self) -> str:
        return f"/run/netns/{self.pod}"


@pytest.fixture
def lan() -> Iterator[Lan]:
    tag = secrets.token_hex(3)
    lan = Lan(lower=f"cmp{tag}", missing=f"cmx{tag}", pod=f"cmppod-{tag}")
    before = host_mvt_links()
    ip("link", "add", lan.lower, "mtu", "1500", "type", "veth", "peer", "name", f"cmq{tag}")
    ip("link", "set", lan.lower, "up")
    ip("netns", "add", lan.pod)
    yield lan
    ip("netns", "del", lan.pod, check=False)
    for name in (host_mvt_links() - before) | (returned_links() - before):
        ip("link", "del", name, check=False)
    ip("link", "del", lan.lower, check=False)


def configs(lan: Lan) -> list[tuple[str, str | None]]:
    """(row of issue 13's table, DP_MACVTAP_CONF)."""
    lower, missing = lan.lower, lan.missing
    return [
        ("trailing comma", f'[{{"name": "tc", "lowerDevice": "{lower}", "capacity": 3}},]'),
        ("extra key", f'[{{"name": "ek", "lowerDevice": "{lower}", "capacity": 3, "comment": "rack 4"}}]'),
        ("key case", f'[{{"Name": "kc", "LowerDevice": "{lower}", "Capacity": 3}}]'),
        ("duplicate name", f'[{{"name": "dn", "lowerDevice": "{missing}", "capacity": 2}}, '
                           f'{{"name": "dn", "lowerDevice": "{lower}", "capacity": 3}}]'),
        ("capacity 0", f'[{{"name": "cz", "lowerDevice": "{lower}", "capacity": 0}}]'),
        ("null", "null"),
        ("master", f'[{{"name": "ms", "master": "{lower}"}}, {{"name": "ok", "lowerDevice": "{lower}", '
                   '"capacity": 1}]'),
        ("empty name", f'[{{"name": "", "lowerDevice": "{lower}"}}, {{"name": "ok", "lowerDevice": "{lower}", '
                       '"capacity": 1}]'),
        ("passthru", f'[{{"name": "pt", "lowerDevice": "{lower}", "mode": "passthru"}}]'),
    ]


def test_the_configmap_table_row_by_row(upstream: Path, lan: Lan, tmp_path: Path) -> None:
    """Issue 13's table, measured: where upstream serves a document, the agent serves at least the same devices;
    where upstream crash-loops (trailing comma) or serves nothing usable (master, empty name, passthru), the
    agent serves what has one meaning and refuses the rest by name."""
    rows = configs(lan)
    plugins: dict[str, tuple[DevicePlugin, DevicePlugin]] = {}
    try:
        for i, (row, conf) in enumerate(rows):
            (tmp_path / f"u{i}").mkdir()
            (tmp_path / f"a{i}").mkdir()
            plugins[row] = (DevicePlugin("upstream", tmp_path / f"u{i}", upstream, conf),
                            DevicePlugin("agent", tmp_path / f"a{i}", upstream, conf))
        deadline = time.monotonic() + UPSTREAM_SETTLE
        while time.monotonic() < deadline:  # every upstream registered or exited
            if all(u.proc.poll() is not None or u.advertised() for u, _ in plugins.values()):
                break
            time.sleep(0.5)
        time.sleep(2)  # ListAndWatch answers follow registration
        got = {row: (u.advertised(), u.proc.poll(), a.advertised(), a.log()) for row, (u, a) in plugins.items()}
    finally:
        for u, a in plugins.values():
            u.stop()
            a.stop()
    report = "\n".join(f"{row}: upstream {g[0]} (exit {g[1]}), agent {g[2]}" for row, g in got.items())
    print(report)

    def same(row: str) -> None:
        up, code, ours, _ = got[row]
        assert code is None, f"{row}: upstream exited {code}\n{report}"
        assert up and ours == up, f"{row}\n{report}"

    for row in ("extra key", "key case", "duplicate name", "capacity 0"):
        same(row)
    assert got["key case"][2] == {"kc": 3} and got["duplicate name"][2] == {"dn": 3}
    assert got["capacity 0"][2] == {"cz": 100}
    # null means []: every physical link or bond, the same set on both sides — the set read here, independently
    # (ip's own view: no link kind, or a bond; not loopback), so that two plugins serving nothing cannot pass.
    links = json.loads(ip("-d", "-j", "link", "show").stdout)
    physical = {link["ifname"] for link in links if link.get("link_type") != "loopback"
                and (link.get("linkinfo") or {}).get("info_kind", "") in ("", "bond")}
    assert got["null"][1] is None, report
    assert set(got["null"][0]) == physical and got["null"][2] == got["null"][0], (physical, report)
    # Upstream crash-loops on the user guide's trailing comma; the agent serves it (with a warning).
    assert got["trailing comma"][1] == 1 and got["trailing comma"][0] == {}
    assert got["trailing comma"][2] == {"tc": 3} and "trailing comma" in got["trailing comma"][3]
    # `master` and an empty name: upstream registers resources no pod can use; the agent refuses them by name.
    assert got["master"][0].get("ms") == 0 and got["master"][2] == {"ok": 1}
    assert "key 'master' is not read" in got["master"][3]
    assert got["empty name"][2] == {"ok": 1} and "missing name" in got["empty name"][3]
    # passthru: upstream advertises 100 devices it cannot allocate; the agent one it can (tested below).
    assert got["passthru"][0] == {"pt": 100} and got["passthru"][2] == {"pt": 1}


def test_passthru_upstream_advertises_then_fails_allocate(upstream: Path, lan: Lan, tmp_path: Path) -> None:
    conf = f'[{{"name": "pt", "lowerDevice": "{lan.lower}", "mode": "passthru"}}]'
    dp = DevicePlugin("upstream", tmp_path, upstream, conf)
    try:
        dp.kubelet.wait(lambda: dp.advertised().get("pt"), timeout=UPSTREAM_SETTLE)
        import grpc

        with pytest.raises(grpc.RpcError) as info:
            dp.kubelet.allocate(PREFIX + "pt", ["ptMvp0"])
        assert "unknown macvtap mode" in str(info.value.details())
    finally:
        dp.stop()


def cni(plugin: Path, command: str, conf: dict[str, Any], netns: str, *, mac: str | None = None,
        socket: str | None = None) -> tuple[int, dict[str, Any]]:
    env = {"PATH": os.environ["PATH"], "CNI_COMMAND": command, "CNI_CONTAINERID": "cmp", "CNI_NETNS": netns,
           "CNI_IFNAME": "net1", "CNI_PATH": str(plugin.parent),
           "CNI_ARGS": "IgnoreUnknown=1" + (f";MAC={mac}" if mac else "")}
    if socket:
        env["MACVTAPCTL_CNI_SOCKET"] = socket
    p = subprocess.run([str(plugin)], env=env, input=json.dumps(conf).encode(), capture_output=True, timeout=60, check=False)
    out = json.loads(p.stdout) if p.stdout.strip() else {}
    if out.get("dns") == {}:
        out.pop("dns")  # Go's library prints an empty dns block; the agent leaves it out: same meaning
    return p.returncode, out


def attached(lan: Lan) -> dict[str, Any]:
    link = json.loads(ip("-j", "-d", "-n", lan.pod, "link", "show", "net1").stdout)[0]
    st = os.stat(f"/dev/tap{link['ifindex']}")
    return {"mtu": link["mtu"], "mac": link["address"], "mode": link["linkinfo"]["info_data"]["mode"],
            "owner": (st.st_uid, st.st_gid), "up": "UP" in link["flags"]}


@pytest.mark.parametrize("version", ["0.1.0", "0.2.0"])
def test_cni_0_1_and_0_2_fail_upstream_after_moving_the_link_and_work_in_the_agent(
        upstream: Path, shim: Path, lan: Lan, tmp_path: Path, version: str) -> None:
    """Measured: upstream "accepts" 0.1.0/0.2.0 but cannot express a result without IPs in them, so every ADD
    fails (code 999) after the link was already moved into the pod. The agent answers in that version's shape
    (no interfaces exist there: DNS only) and the pod gets its link."""
    agent = DevicePlugin("agent", tmp_path, upstream, "[]")
    conf = {"cniVersion": version, "name": "cmp", "type": "macvtap", "deviceID": "cmpMvp0"}
    tmp = temporary_link_name("cmpMvp0")
    try:
        ip("link", "add", tmp, "link", lan.lower, "type", "macvtap", "mode", "bridge")
        code, result = cni(upstream / "macvtap", "ADD", conf, lan.pod_path)
        assert code == 1 and result["code"] == 999 and "no valid IP addresses" in result["msg"]
        assert cni(upstream / "macvtap", "DEL", conf, lan.pod_path)[0] == 0  # the runtime's cleanup
        ip("link", "add", tmp, "link", lan.lower, "type", "macvtap", "mode", "bridge")
        while not os.path.exists(agent.socket):
            assert agent.proc.poll() is None, agent.log()
            time.sleep(0.05)
        code, result = cni(shim, "ADD", conf, lan.pod_path, socket=agent.socket)
        assert (code, result) == (0, {"cniVersion": version})
        assert attached(lan)["up"] and attached(lan)["owner"] == (107, 107)
        assert cni(shim, "DEL", conf, lan.pod_path, socket=agent.socket)[0] == 0
    finally:
        ip("link", "del", tmp, check=False)
        agent.stop()


@pytest.mark.parametrize(("row", "extra", "mac"), [
    ("cniVersion 0.3.0", {"cniVersion": "0.3.0"}, None),
    ("cniVersion 0.3.1", {"cniVersion": "0.3.1", "mtu": 1400}, "02:00:00:00:00:51"),
    ("cniVersion 0.4.0", {"cniVersion": "0.4.0", "promiscMode": True}, "02:00:00:00:00:52"),
    ("dashed MAC", {"cniVersion": "0.4.0"}, "02-00-00-00-00-53"),
    ("mtu 0", {"cniVersion": "0.4.0", "mtu": 0}, None),
    ("owner -1", {"cniVersion": "0.4.0", "owner": -1, "group": 107}, None),
    ("owner 0", {"cniVersion": "0.4.0", "owner": 0, "group": 0}, None),
])
def test_the_cni_table_row_by_row(upstream: Path, shim: Path, lan: Lan, tmp_path: Path, row: str,
                                  extra: dict[str, Any], mac: str | None) -> None:
    """The same ADD through upstream's plugin and through the agent: same result JSON, same link, same tap
    owner; then DEL through each."""
    agent = DevicePlugin("agent", tmp_path, upstream, "[]")
    try:
        while not os.path.exists(agent.socket):
            assert agent.proc.poll() is None, agent.log()
            time.sleep(0.05)
        seen = []
        for plugin, socket in ((upstream / "macvtap", None), (shim, agent.socket)):
            conf = {"name": "cmp", "type": "macvtap", "deviceID": "cmpMvp0", **extra}
            tmp = temporary_link_name("cmpMvp0")
            ip("link", "add", tmp, "link", lan.lower, "type", "macvtap", "mode", "bridge")
            code, result = cni(plugin, "ADD", conf, lan.pod_path, mac=mac, socket=socket)
            assert code == 0, (row, plugin, result)
            seen.append((result, attached(lan)))
            code, _ = cni(plugin, "DEL", conf, lan.pod_path, socket=socket)
            assert code == 0, (row, plugin)
            ip("link", "del", tmp, check=False)  # the agent gives the link back to the node on DEL
        (up_result, up_link), (our_result, our_link) = seen
        for result in (up_result, our_result):
            for iface in result.get("interfaces") or []:
                iface.pop("mac", None)  # without a requested MAC the kernel picks a random one each time
        if not mac:
            up_link.pop("mac")
            our_link.pop("mac")
        assert our_result == up_result, row
        assert our_link == up_link, row
    finally:
        agent.stop()


def test_cross_upstream_device_plugin_with_the_agents_cni(upstream: Path, shim: Path, lan: Lan,
                                                          tmp_path: Path) -> None:
    (tmp_path / "u").mkdir()
    (tmp_path / "a").mkdir()
    dp = DevicePlugin("upstream", tmp_path / "u", upstream, f'[{{"name": "x", "lowerDevice": "{lan.lower}"}}]')
    agent = DevicePlugin("agent", tmp_path / "a", upstream, "[]")
    try:
        dp.kubelet.wait(lambda: dp.advertised().get("x"), timeout=UPSTREAM_SETTLE)
        dp.kubelet.allocate(PREFIX + "x", ["xMvp7"])
        assert temporary_link_name("xMvp7") in host_mvt_links()
        conf = {"cniVersion": "0.4.0", "name": "x", "type": "macvtap", "deviceID": "xMvp7"}
        code, result = cni(shim, "ADD", conf, lan.pod_path, mac="02:00:00:00:00:61", socket=agent.socket)
        assert code == 0, result
        assert attached(lan)["mac"] == "02:00:00:00:00:61" and attached(lan)["owner"] == (107, 107)
        assert cni(shim, "DEL", conf, lan.pod_path, socket=agent.socket)[0] == 0
    finally:
        dp.stop()
        agent.stop()


def test_cross_the_agents_device_plugin_with_upstreams_cni(upstream: Path, lan: Lan, tmp_path: Path) -> None:
    agent = DevicePlugin("agent", tmp_path, upstream, f'[{{"name": "y", "lowerDevice": "{lan.lower}"}}]')
    try:
        agent.kubelet.wait(lambda: agent.advertised().get("y"), timeout=10)
        agent.kubelet.allocate(PREFIX + "y", ["yMvp3"])
        conf = {"cniVersion": "0.4.0", "name": "y", "type": "macvtap", "deviceID": "yMvp3"}
        code, result = cni(upstream / "macvtap", "ADD", conf, lan.pod_path, mac="02:00:00:00:00:62")
        assert code == 0, result
        assert attached(lan)["mac"] == "02:00:00:00:00:62" and attached(lan)["owner"] == (107, 107)
        assert cni(upstream / "macvtap", "DEL", conf, lan.pod_path)[0] == 0
    finally:
        agent.stop()
