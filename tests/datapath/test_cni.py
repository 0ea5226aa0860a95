"""The CNI through the shim, driven by cnitool, on real namespaces, veths, macvtap links and /dev/tapN."""

from __future__ import annotations

import contextlib
import json
import os
import select
import socket
import struct
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest

from macvtapctl.agent.cni.protocol import SUPPORTED_VERSIONS
from macvtapctl.agent.handoff import rarp  # QEMU's self-announce: tests/unit/test_handoff.py checks its bytes
from macvtapctl.agent.netlink import netns as agent_netns
from tests.datapath.helpers import Node, host_mvt_links, ip, run_cnitool, run_shim, write_conf

ETH_P_EXPERIMENTAL = 0x88B5
VNET_HDR = 10  # macvtap queues default to IFF_VNET_HDR: a 10-byte virtio_net_hdr precedes each frame


@pytest.mark.parametrize("version", SUPPORTED_VERSIONS)
def test_add_check_del(cnitool, agent, node: Node, version: str) -> None:
    tmp = node.allocate("dataplaneMvp0")
    write_conf(agent, "mvt", version, deviceID="dataplaneMvp0", mtu=1400, owner=107, group=107)
    r = run_cnitool(cnitool, agent, "add", "mvt", node.pod_path, args="IgnoreUnknown=true;MAC=02:00:00:00:00:42")
    assert r.code == 0, r.stdout + r.stderr
    iface = {"name": "net1", "mac": "02:00:00:00:00:42", "sandbox": node.pod_path}
    if version == "1.1.0":
        iface["mtu"] = 1400
    result = r.result
    assert result.pop("dns", {}) == {}  # libcni prints an empty dns block for every version
    # 0.1.0/0.2.0 results carry no interfaces (ip4/ip6/dns only): what upstream's library converts to as well.
    assert result == ({"cniVersion": version} if version in ("0.1.0", "0.2.0") else
                      {"cniVersion": version, "interfaces": [iface]})
    link = node.pod_link("net1")
    assert link["linkinfo"]["info_kind"] == "macvtap"
    assert link["linkinfo"]["info_data"]["mode"] == "bridge"
    assert link["mtu"] == 1400 and link["address"] == "02:00:00:00:00:42" and "UP" in link["flags"]
    assert tmp not in host_mvt_links()  # moved, not copied
    st = os.stat(f"/dev/tap{link['ifindex']}")
    assert (st.st_uid, st.st_gid) == (107, 107)
    if version not in ("0.1.0", "0.2.0", "0.3.0", "0.3.1"):  # CHECK exists from 0.4.0
        r = run_cnitool(cnitool, agent, "check", "mvt", node.pod_path,
                        args="IgnoreUnknown=true;MAC=02:00:00:00:00:42")
        assert r.code == 0, r.stdout + r.stderr
    r = run_cnitool(cnitool, agent, "del", "mvt", node.pod_path)
    assert r.code == 0, r.stdout + r.stderr
    assert node.pod_link("net1") is None
    assert run_cnitool(cnitool, agent, "del", "mvt", node.pod_path).code == 0  # repeated DEL succeeds


def test_upstreams_leave_as_is_values_leave_the_link_and_device_as_they_are(cnitool, agent, node: Node) -> None:
    """Issue 13.1: mtu 0 (Go's zero value) keeps the lower's MTU, owner -1 keeps /dev/tapN's owner, and a dashed
    MAC is a MAC — upstream accepts all three; a drop-in must not refuse a NAD that works today."""
    node.allocate("leaveMvp0")
    lower_mtu = json.loads(ip("-j", "link", "show", node.lower).stdout)[0]["mtu"]
    write_conf(agent, "leave", "0.4.0", deviceID="leaveMvp0", mtu=0, owner=-1, group=107)
    r = run_cnitool(cnitool, agent, "add", "leave", node.pod_path, args="IgnoreUnknown=true;MAC=02-00-00-00-00-43")
    assert r.code == 0, r.stdout + r.stderr
    link = node.pod_link("net1")
    assert link["mtu"] == lower_mtu and link["address"] == "02:00:00:00:00:43"
    st = os.stat(f"/dev/tap{link['ifindex']}")
    assert (st.st_uid, st.st_gid) == (0, 107)  # owner left as the kernel made it (root)
    assert run_cnitool(cnitool, agent, "del", "leave", node.pod_path).code == 0


def test_del_gives_the_link_back_so_a_retried_sandbox_succeeds(cnitool, agent, node: Node) -> None:
    """The kubelet allocates once per pod: after a failed sandbox (DEL), the retry must find the same link, with
    the same ifindex, so the /dev/tapN already handed to the container stays right."""
    tmp = node.allocate("retryMvp0")
    index = json.loads(ip("-j", "link", "show", tmp).stdout)[0]["ifindex"]
    write_conf(agent, "retry", "1.0.0", deviceID="retryMvp0")
    assert run_cnitool(cnitool, agent, "add", "retry", node.pod_path).code == 0
    assert run_cnitool(cnitool, agent, "del", "retry", node.pod_path).code == 0
    back = json.loads(ip("-j", "-d", "link", "show", tmp).stdout)[0]
    assert back["ifindex"] == index and back["linkinfo"]["info_kind"] == "macvtap"
    second = node.new_pod()
    r = run_cnitool(cnitool, agent, "add", "retry", second)
    assert r.code == 0, r.stdout + r.stderr
    assert node.pod_link("net1", second.rsplit("/", 1)[1])["ifindex"] == index
    # Without a deviceID (Multus cannot look it up once the pod is gone) the link's alias names it.
    conf = json.dumps({"cniVersion": "1.0.0", "name": "retry", "type": "macvtap"}).encode()
    r = run_shim(agent, {"CNI_COMMAND": "DEL", "CNI_CONTAINERID": "x", "CNI_NETNS": second, "CNI_IFNAME": "net1",
                         "CNI_PATH": agent.bin_dir}, conf)
    assert r.code == 0, r.stdout
    assert json.loads(ip("-j", "link", "show", tmp).stdout)[0]["ifindex"] == index


def test_del_trusts_the_links_alias_over_a_wrong_device_id(cnitool, agent, node: Node) -> None:
    """Multus' DEL for a pod that is already gone can carry another pod's deviceID (seen on a real node): the
    link must go back under its own name, never under the other device's."""
    mine = node.allocate("mineMvp0")
    write_conf(agent, "mine", "1.0.0", deviceID="mineMvp0")
    assert run_cnitool(cnitool, agent, "add", "mine", node.pod_path).code == 0
    write_conf(agent, "mine", "1.0.0", deviceID="otherMvp3")
    assert run_cnitool(cnitool, agent, "del", "mine", node.pod_path).code == 0
    from macvtapctl.agent.link_name import temporary_link_name

    assert mine in host_mvt_links() and temporary_link_name("otherMvp3") not in host_mvt_links()


def test_del_deletes_a_stale_link_when_the_device_was_allocated_again(cnitool, agent, node: Node) -> None:
    node.allocate("againMvp0")
    write_conf(agent, "again", "1.0.0", deviceID="againMvp0")
    assert run_cnitool(cnitool, agent, "add", "again", node.pod_path).code == 0
    tmp = node.allocate("againMvp0")  # the kubelet gave the device to another pod meanwhile
    fresh = json.loads(ip("-j", "link", "show", tmp).stdout)[0]["ifindex"]
    assert run_cnitool(cnitool, agent, "del", "again", node.pod_path).code == 0
    assert node.pod_link("net1") is None
    assert json.loads(ip("-j", "link", "show", tmp).stdout)[0]["ifindex"] == fresh  # the new owner's link stays
    ip("link", "del", tmp)


def test_runtime_config_device_id_and_promisc(cnitool, agent, node: Node) -> None:
    node.allocate("eth0Mvp7")
    write_conf(agent, "rc", "1.0.0", runtimeConfig={"deviceID": "eth0Mvp7"}, promiscMode=True)
    r = run_cnitool(cnitool, agent, "add", "rc", node.pod_path, ifname="pod954b3b7236c")
    assert r.code == 0, r.stdout
    assert node.pod_link("pod954b3b7236c")["promiscuity"] >= 1
    r = run_cnitool(cnitool, agent, "check", "rc", node.pod_path, ifname="pod954b3b7236c")
    assert r.code == 0, r.stdout
    ip("-n", node.pod, "link", "set", "pod954b3b7236c", "down")
    r = run_cnitool(cnitool, agent, "check", "rc", node.pod_path, ifname="pod954b3b7236c")
    assert r.code != 0
    assert r.stderr.strip() == "interface pod954b3b7236c is down"  # cnitool prints the error's msg
    r = shim_call(agent, "CHECK", node.pod_path, {"cniVersion": "1.0.0", "name": "rc", "type": "macvtap",
                                                  "promiscMode": True}, ifname="pod954b3b7236c")
    assert r.result["code"] == 105 and "is down" in r.result["msg"]
    assert run_cnitool(cnitool, agent, "del", "rc", node.pod_path, ifname="pod954b3b7236c").code == 0


def _packet_socket(netns_path: str, ifname: str) -> socket.socket:
    fd = agent_netns.open_netns(netns_path)
    try:
        with agent_netns.entered(fd):
            s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(ETH_P_EXPERIMENTAL))
            s.bind((ifname, ETH_P_EXPERIMENTAL))
    finally:
        os.close(fd)
    return s


def _mac_bytes(mac: str) -> bytes:
    return bytes(int(b, 16) for b in mac.split(":"))


def test_real_frames_both_ways(cnitool, agent, node: Node) -> None:
    node.allocate("dataplaneMvp1")
    write_conf(agent, "frames", "1.1.0", deviceID="dataplaneMvp1")
    r = run_cnitool(cnitool, agent, "add", "frames", node.pod_path, args="MAC=02:00:00:00:00:77")
    assert r.code == 0, r.stdout
    link = node.pod_link("net1")
    peer_mac = json.loads(ip("-j", "-n", node.peer_ns, "link", "show", node.peer).stdout)[0]["address"]
    sniffer = _packet_socket(f"/run/netns/{node.peer_ns}", node.peer)
    tap = os.open(f"/dev/tap{link['ifindex']}", os.O_RDWR | os.O_NONBLOCK)
    try:
        # VM -> wire: a frame written to /dev/tapN leaves through the lower device.
        payload = b"macvtapctl says hello " + os.urandom(8)
        frame = _mac_bytes(peer_mac) + _mac_bytes("02:00:00:00:00:77") + struct.pack("!H", ETH_P_EXPERIMENTAL) + payload
        os.write(tap, bytes(VNET_HDR) + frame)
        sniffer.settimeout(5)
        got = sniffer.recv(2048)
        assert got[:len(frame)] == frame
        # wire -> VM: a frame to the macvtap's MAC arrives on /dev/tapN.
        back = b"and back " + os.urandom(8)
        reply = _mac_bytes("02:00:00:00:00:77") + _mac_bytes(peer_mac) + struct.pack("!H", ETH_P_EXPERIMENTAL) + back
        sniffer.send(reply)
        deadline = time.monotonic() + 5
        received = b""
        while time.monotonic() < deadline:
            ready, _, _ = select.select([tap], [], [], 0.5)
            if ready:
                data = os.read(tap, 65536)[VNET_HDR:]
                if data[12:14] == struct.pack("!H", ETH_P_EXPERIMENTAL):
                    received = data
                    break
        assert received[:len(reply)] == reply
    finally:
        os.close(tap)
        sniffer.close()
    assert run_cnitool(cnitool, agent, "del", "frames", node.pod_path).code == 0


def test_status_and_gc(cnitool, agent, node: Node) -> None:
    write_conf(agent, "gc", "1.1.0", deviceID="gcMvp0")
    assert run_cnitool(cnitool, agent, "status", "gc", node.pod_path).code == 0
    old = node.allocate("leakMvp0")
    run_shim(agent, {"CNI_COMMAND": "GC", "CNI_PATH": agent.bin_dir},
             json.dumps({"cniVersion": "1.1.0", "name": "gc", "type": "macvtap",
                         "cni.dev/valid-attachments": []}).encode())  # first sight of `old`
    time.sleep(2.2)  # the agent runs with --gc-min-age 2
    young = node.allocate("youngMvp0")
    r = run_cnitool(cnitool, agent, "gc", "gc", node.pod_path)
    assert r.code == 0, r.stdout + r.stderr
    links = host_mvt_links()
    assert old not in links  # leaked for longer than the minimum age: reclaimed
    assert young in links  # just allocated: kept
    ip("link", "del", young)


def shim_call(agent, command: str, netns: str, conf: dict, ifname: str = "net1", **env: str):
    """The shim alone (the runtime's view): its stdout carries the CNI error JSON with the code."""
    return run_shim(agent, {"CNI_COMMAND": command, "CNI_CONTAINERID": "c1", "CNI_NETNS": netns,
                            "CNI_IFNAME": ifname, "CNI_PATH": agent.bin_dir, **env}, json.dumps(conf).encode())


def test_missing_device_link(cnitool, agent, node: Node) -> None:
    write_conf(agent, "nodev", "1.0.0", deviceID="neverAllocatedMvp0")
    r = run_cnitool(cnitool, agent, "add", "nodev", node.pod_path)
    assert r.code != 0 and "neverAllocatedMvp0" in r.stderr
    r = shim_call(agent, "ADD", node.pod_path, {"cniVersion": "1.0.0", "name": "nodev", "type": "macvtap",
                                                "deviceID": "neverAllocatedMvp0"})
    assert r.result["code"] == 100
    assert "deviceID 'neverAllocatedMvp0' not found on this node" in r.result["msg"]
    assert node.pod_link("net1") is None


def test_mtu_larger_than_lower_device(cnitool, agent, node: Node) -> None:
    tmp = node.allocate("bigMvp0")
    write_conf(agent, "big", "1.1.0", deviceID="bigMvp0", mtu=9000)
    r = run_cnitool(cnitool, agent, "add", "big", node.pod_path)
    assert r.code != 0 and "larger than the MTU 1500" in r.stderr and node.lower in r.stderr
    r = shim_call(agent, "ADD", node.pod_path, {"cniVersion": "1.1.0", "name": "big", "type": "macvtap",
                                                "deviceID": "bigMvp0", "mtu": 9000})
    assert r.result["code"] == 101
    assert node.pod_link("net1") is None and node.pod_link(tmp) is None
    assert tmp in host_mvt_links()  # the allocation is untouched
    ip("link", "del", tmp)


def test_existing_ifname_leaves_nothing_behind(cnitool, agent, node: Node) -> None:
    tmp = node.allocate("dupMvp0")
    ip("-n", node.pod, "link", "add", "net1", "type", "veth", "peer", "name", "net1peer")
    write_conf(agent, "dup", "1.1.0", deviceID="dupMvp0")
    r = run_cnitool(cnitool, agent, "add", "dup", node.pod_path)
    assert r.code != 0 and "already exists" in r.stderr
    r = shim_call(agent, "ADD", node.pod_path, {"cniVersion": "1.1.0", "name": "dup", "type": "macvtap",
                                                "deviceID": "dupMvp0"})
    assert r.result["code"] == 102
    assert node.pod_link("net1")["linkinfo"]["info_kind"] == "veth"  # untouched
    assert node.pod_link(tmp) is None
    ip("link", "del", tmp)


def test_a_mac_already_on_the_lower_device_is_named_and_leaves_the_pod_clean(agent, node: Node) -> None:
    """Two macvtaps on one lower device cannot share a MAC: the kernel refuses the second after the move (one
    RTM_SETLINK moves and configures), and the half-configured link is not left in the pod."""
    first, second = node.allocate("macaMvp0"), node.allocate("macaMvp1")
    mac = "02:00:00:0a:0b:0c"
    conf = {"cniVersion": "1.1.0", "name": "maca", "type": "macvtap", "deviceID": "macaMvp0"}
    assert shim_call(agent, "ADD", node.pod_path, conf, CNI_ARGS=f"MAC={mac}").code == 0
    other = node.new_pod()
    r = shim_call(agent, "ADD", other, {**conf, "deviceID": "macaMvp1"}, CNI_ARGS=f"MAC={mac}")
    assert r.result["code"] == 104 and f"MAC {mac} is already used" in r.result["msg"], r.result
    assert node.pod_link("net1", other.rsplit("/", 1)[1]) is None
    assert node.pod_link(second, other.rsplit("/", 1)[1]) is None
    assert shim_call(agent, "DEL", node.pod_path, conf, CNI_ARGS=f"MAC={mac}").code == 0
    ip("link", "del", first, check=False)
    ip("link", "del", second, check=False)


@pytest.mark.parametrize(("ifname", "needle"), [("bad/name", "'/'"), ("x" * 16, "at most 15"), ("..", "'..'")])
def test_bad_ifname(agent, node: Node, ifname: str, needle: str) -> None:
    r = run_shim(agent, {"CNI_COMMAND": "ADD", "CNI_CONTAINERID": "c1", "CNI_NETNS": node.pod_path,
                         "CNI_IFNAME": ifname, "CNI_PATH": agent.bin_dir},
                 json.dumps({"cniVersion": "1.0.0", "name": "x", "type": "macvtap", "deviceID": "a"}).encode())
    assert r.code == 1
    assert r.result["code"] == 4 and needle in r.result["msg"]


def test_netns_must_exist_and_is_never_created(agent, node: Node) -> None:
    env = {"CNI_COMMAND": "ADD", "CNI_CONTAINERID": "c1", "CNI_NETNS": "/run/netns/does-not-exist",
           "CNI_IFNAME": "net1", "CNI_PATH": agent.bin_dir}
    conf = json.dumps({"cniVersion": "1.0.0", "name": "x", "type": "macvtap", "deviceID": "a"}).encode()
    r = run_shim(agent, env, conf)
    assert r.result["code"] == 4 and "does not exist" in r.result["msg"]
    assert not os.path.exists("/run/netns/does-not-exist")
    r = run_shim(agent, {**env, "CNI_NETNS": "/etc/hostname"}, conf)
    assert r.result["code"] == 4 and "not a network namespace" in r.result["msg"]
    r = run_shim(agent, {**env, "CNI_NETNS": f"/proc/{os.getpid()}/ns/net"}, conf)
    assert r.result["code"] == 8  # the node's own namespace


def test_netns_gone_before_del(cnitool, agent, node: Node) -> None:
    node.allocate("goneMvp0")
    write_conf(agent, "gone", "1.1.0", deviceID="goneMvp0")
    assert run_cnitool(cnitool, agent, "add", "gone", node.pod_path).code == 0
    ip("netns", "del", node.pod)  # the macvtap dies with its namespace
    r = run_cnitool(cnitool, agent, "del", "gone", node.pod_path)
    assert r.code == 0, r.stdout + r.stderr
    ip("netns", "add", node.pod)  # for the fixture's cleanup


def test_agent_down_is_try_again_later(agent, node: Node) -> None:
    conf = json.dumps({"cniVersion": "0.4.0", "name": "x", "type": "macvtap", "deviceID": "a"}).encode()
    r = run_shim(agent, {"CNI_COMMAND": "ADD"}, conf, socket=str(agent.dir / "no-agent.sock"))
    assert r.code == 1
    assert r.result == {"cniVersion": "0.4.0", "code": 11,  # try again later, in the caller's version
                        "msg": "macvtapctl agent is not reachable; is the macvtap agent pod running on this node?",
                        "details": "No such file or directory"}  # connect(2)'s errno: no socket at that path


def test_agent_silent_times_out_with_try_again(agent, tmp_path) -> None:
    path = str(tmp_path / "silent.sock")
    srv = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    srv.bind(path)
    srv.listen(1)
    conns = []
    t = threading.Thread(target=lambda: conns.append(srv.accept()[0]), daemon=True)
    t.start()
    try:
        r = run_shim(agent, {"CNI_COMMAND": "ADD", "MACVTAPCTL_CNI_TIMEOUT": "1"}, b'{"cniVersion":"1.1.0"}',
                     socket=path)
    finally:
        for c in conns:
            c.close()
        srv.close()
    assert r.result["code"] == 11 and "did not answer in time" in r.result["msg"]


def test_the_timeout_is_one_deadline_not_per_read(agent, tmp_path) -> None:
    """Issue 13.9: an agent dribbling one byte every 0.4 s held the shim for 3.4 s with a 1 s timeout."""
    path = str(tmp_path / "dribble.sock")
    srv = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    srv.bind(path)
    srv.listen(1)
    stop = threading.Event()

    def dribble() -> None:
        conn = srv.accept()[0]
        with conn:
            for byte in b"MVR1" + bytes(12):
                if stop.wait(0.4):
                    return
                with contextlib.suppress(OSError):
                    conn.send(bytes([byte]))

    t = threading.Thread(target=dribble, daemon=True)
    t.start()
    try:
        r = run_shim(agent, {"CNI_COMMAND": "ADD", "MACVTAPCTL_CNI_TIMEOUT": "1"}, b'{"cniVersion":"1.1.0"}',
                     socket=path)
    finally:
        stop.set()
        srv.close()
    # Every byte arrives within 1 s of the previous one: a per-read timeout would relay the (empty, exit 0)
    # answer after 6.4 s; one deadline gives up.
    assert r.code == 1 and r.result["code"] == 11 and "did not answer in time" in r.result["msg"]


def test_more_cni_variables_than_the_wire_carries_are_refused(agent) -> None:
    """Issue 13.9: variables past the 32nd used to be dropped silently — CNI_COMMAND could be one of them."""
    env = {f"CNI_X{i:02d}": "x" for i in range(40)} | {"CNI_COMMAND": "VERSION"}
    r = run_shim(agent, env, b"")
    assert r.code == 1 and r.result["code"] == 4 and "too many CNI_*" in r.result["msg"]


def test_exactly_one_mib_of_stdin_reaches_the_agent_and_one_byte_more_does_not(agent) -> None:
    body = b'{"cniVersion":"1.1.0","pad":"'
    body += b"x" * ((1 << 20) - len(body) - 2) + b'"}'
    assert len(body) == 1 << 20
    r = run_shim(agent, {"CNI_COMMAND": "VERSION"}, body)
    assert r.code == 0 and r.result["cniVersion"] == "1.1.0"
    r = run_shim(agent, {"CNI_COMMAND": "VERSION"}, body + b" ")
    assert r.code == 1 and r.result["code"] == 6 and "File too large" in r.result["details"]


def test_the_error_json_quotes_the_socket_path_and_names_a_real_cause(agent, tmp_path) -> None:
    """Issue 13.9: the socket path went into the JSON unescaped, and a protocol error said "Success"."""
    weird = str(tmp_path / 'a"b\\c.sock')
    r = run_shim(agent, {"CNI_COMMAND": "ADD"}, b'{"cniVersion":"0.4.0"}', socket=weird)
    assert r.result["code"] == 11 and r.result["cniVersion"] == "0.4.0"  # valid JSON, in the caller's version
    path = str(tmp_path / "garbage.sock")
    srv = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    srv.bind(path)
    srv.listen(1)

    def garbage() -> None:
        conn = srv.accept()[0]
        with conn:
            while conn.recv(65536):  # the whole request (the shim half-closes after it), then a wrong answer
                pass
            conn.sendall(b"HTTP/1.1 200 OK\r\n")

    threading.Thread(target=garbage, daemon=True).start()
    try:
        r = run_shim(agent, {"CNI_COMMAND": "ADD"}, b'{"cniVersion":"1.0.0"}', socket=path)
    finally:
        srv.close()
    assert r.result["code"] == 11 and "malformed" in r.result["msg"] and r.result["details"] != "Success"


@pytest.mark.parametrize(("stdin", "code"), [(b"{not json", 6), (b"[1,2]", 6), (b'{"name":"x"}', 7),
                                             (b'{"cniVersion":"9.9.9"}', 1)])
def test_malformed_stdin(agent, node: Node, stdin: bytes, code: int) -> None:
    r = run_shim(agent, {"CNI_COMMAND": "ADD", "CNI_CONTAINERID": "c", "CNI_NETNS": node.pod_path,
                         "CNI_IFNAME": "net1"}, stdin)
    assert r.code == 1 and r.result["code"] == code


def test_version_lists_exactly_what_is_supported(agent) -> None:
    r = run_shim(agent, {"CNI_COMMAND": "VERSION"}, b'{"cniVersion":"1.0.0"}')
    assert r.result == {"cniVersion": "1.0.0", "supportedVersions": ["0.1.0", "0.2.0", "0.3.0", "0.3.1", "0.4.0",
                                                                    "1.0.0", "1.1.0"]}
    assert run_shim(agent, {"CNI_COMMAND": "VERSION"}, b"").code == 0


def test_fifty_concurrent_adds_then_dels(agent, node: Node) -> None:
    pods = [(node.new_pod(), f"par{i}Mvp0") for i in range(50)]
    for _, dev in pods:
        node.allocate(dev)

    def call(cmd: str, netns: str, dev: str):
        conf = json.dumps({"cniVersion": "1.1.0", "name": "par", "type": "macvtap", "deviceID": dev}).encode()
        return run_shim(agent, {"CNI_COMMAND": cmd, "CNI_CONTAINERID": dev, "CNI_NETNS": netns,
                                "CNI_IFNAME": "net1", "CNI_PATH": agent.bin_dir}, conf)

    with ThreadPoolExecutor(max_workers=50) as pool:
        adds = list(pool.map(lambda p: call("ADD", *p), pods))
    assert [r.code for r in adds] == [0] * 50, [r.stdout for r in adds if r.code]
    for netns, _ in pods:
        assert node.pod_link("net1", netns.rsplit("/", 1)[1]) is not None
    with ThreadPoolExecutor(max_workers=50) as pool:
        dels = list(pool.map(lambda p: call("DEL", *p), pods))
    assert [r.code for r in dels] == [0] * 50
    for netns, _ in pods:
        assert node.pod_link("net1", netns.rsplit("/", 1)[1]) is None


def test_proc_pid_netns_path_form(cnitool, agent, node: Node) -> None:
    """Runtimes hand either /run/netns/<name> or /proc/<pid>/ns/net: both must work."""
    import subprocess

    holder = subprocess.Popen(["ip", "netns", "exec", node.pod, "sleep", "60"])
    try:
        time.sleep(0.3)
        netns = f"/proc/{holder.pid}/ns/net"
        node.allocate("procMvp0")
        write_conf(agent, "proc", "1.1.0", deviceID="procMvp0")
        r = run_cnitool(cnitool, agent, "add", "proc", netns)
        assert r.code == 0, r.stdout + r.stderr
        assert node.pod_link("net1") is not None  # it landed in the pod's namespace
        assert run_cnitool(cnitool, agent, "del", "proc", netns).code == 0
        assert node.pod_link("net1") is None
    finally:
        holder.kill()
        holder.wait()


def test_a_refused_concurrent_add_holds_no_namespace_open(node: Node) -> None:
    """An ADD refused because another ADD is attaching the same device must not leak the pod netns fd."""
    import pytest

    from macvtapctl.agent.cni import datapath
    from macvtapctl.agent.cni import protocol as cni
    from macvtapctl.agent.link_name import temporary_link_name
    from macvtapctl.agent.link_registry import LinkRegistry

    registry = LinkRegistry()
    registry.claim(temporary_link_name("busyMvp0"))
    req = cni.parse_request({"CNI_COMMAND": "ADD", "CNI_CONTAINERID": "c1", "CNI_NETNS": node.pod_path,
                             "CNI_IFNAME": "net1", "CNI_PATH": "/opt/cni/bin"},
                            json.dumps({"cniVersion": "1.0.0", "name": "b", "type": "macvtap",
                                        "deviceID": "busyMvp0"}).encode())
    before = len(os.listdir("/proc/self/fd"))
    for _ in range(5):
        with pytest.raises(cni.CniError) as err:
            datapath.add(req, registry)
        assert err.value.code == cni.E_TRY_AGAIN
    assert len(os.listdir("/proc/self/fd")) == before


SNIFF = """
import socket, sys, time
s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(3))
s.bind((sys.argv[1], 0)); s.settimeout(0.2)
mac, end, seen = bytes.fromhex(sys.argv[2].replace(':', '')), time.monotonic() + float(sys.argv[3]), 0
print('ready', flush=True)
while time.monotonic() < end:
    try:
        frame = s.recv(2048)
    except TimeoutError:
        continue
    seen += frame[6:12] == mac
print(seen)
"""


def test_the_link_says_nothing_from_the_vms_mac_until_the_guest_does(cnitool, agent, node: Node) -> None:
    """A migration target's link is up with the VM's MAC while the guest still runs on the source: a frame from
    it (IPv6 DAD, router solicitation: the kernel's own, for the link-local address it would make) teaches the
    LAN's switches the VM's MAC on the wrong node. The link has no IPv6 address and the LAN sees nothing from it."""
    mac = "02:00:00:00:00:43"
    node.allocate("dataplaneMvp9")
    write_conf(agent, "mvt", "1.0.0", deviceID="dataplaneMvp9")
    sniffer = subprocess.Popen(["ip", "netns", "exec", node.peer_ns, sys.executable, "-c", SNIFF, node.peer, mac,
                                "2.5"], stdout=subprocess.PIPE, text=True)
    assert sniffer.stdout is not None and sniffer.stdout.readline().strip() == "ready"
    r = run_cnitool(cnitool, agent, "add", "mvt", node.pod_path, args=f"IgnoreUnknown=true;MAC={mac}")
    assert r.code == 0, r.stdout + r.stderr
    out, _ = sniffer.communicate(timeout=10)
    link = node.pod_link("net1")
    assert link is not None and "UP" in link["flags"] and link["address"] == mac
    assert ip("-n", node.pod, "-6", "-j", "addr", "show", "dev", "net1").stdout.strip() in ("[]", "[{}]", "")
    assert int(out.strip()) == 0, f"{out.strip()} frame(s) from {mac} reached the LAN"
    assert run_cnitool(cnitool, agent, "del", "mvt", node.pod_path).code == 0


def _vm_on_the_lan(cnitool: str, agent: Any, node: Node, name: str, device: str, mac: str) -> tuple[socket.socket, int]:
    """A pod's macvtap with `mac`, attached through the CNI, up; a packet socket on the LAN and the guest's tap."""
    node.allocate(device)
    write_conf(agent, name, "1.0.0", deviceID=device)
    assert run_cnitool(cnitool, agent, "add", name, node.pod_path, args=f"MAC={mac}").code == 0
    link = node.pod_link("net1")
    assert link is not None and "UP" in link["flags"]
    lan = _packet_socket(f"/run/netns/{node.peer_ns}", node.peer)
    return lan, os.open(f"/dev/tap{link['ifindex']}", os.O_RDWR | os.O_NONBLOCK)


def test_a_vm_announced_from_the_lan_takes_its_link_here_down_and_its_own_announcement_does_not(
        cnitool, agent, node: Node) -> None:
    """The migration hand-off (agent/handoff.py): the VM's guest resumed on another node and announced itself
    there; the announcement reaches this node from the LAN, and the agent sets this node's link of that MAC down
    (so its neighbours on the NIC reach the VM where it runs now). An announcement sent by the local guest (a
    migration target here) and one for another MAC change nothing."""
    mac = "02:00:00:00:00:88"
    lan, tap = _vm_on_the_lan(cnitool, agent, node, "handoff", "dataplaneMvp8", mac)
    # The node talking to its VM through a macvlan on the same NIC (docs/vm-on-the-wire.md): the VM's frames reach
    # the shim locally, not from the LAN.
    ip("link", "add", "e2etshim", "link", node.lower, "type", "macvlan", "mode", "bridge")
    try:
        ip("link", "set", "e2etshim", "up")
        shim_mac = json.loads(ip("-j", "link", "show", "e2etshim").stdout)[0]["address"]
        os.write(tap, bytes(VNET_HDR) + _mac_bytes(shim_mac) + rarp(mac)[6:])  # to the shim, from the VM
        os.write(tap, bytes(VNET_HDR) + rarp(mac))  # the local guest announcing itself: outgoing here
        lan.send(rarp("02:00:00:00:00:99"))  # another VM moved: not ours
        time.sleep(1.0)
        assert "UP" in (node.pod_link("net1") or {}).get("flags", []), "the link went down without a reason"
        lan.send(rarp(mac))
        deadline = time.monotonic() + 5
        while "UP" in (node.pod_link("net1") or {}).get("flags", []) and time.monotonic() < deadline:
            time.sleep(0.02)
        assert "UP" not in (node.pod_link("net1") or {})["flags"], "the announced VM's link stayed up"
        time.sleep(1.5)  # a guest that moved writes nothing here: the link stays down
        assert "UP" not in (node.pod_link("net1") or {})["flags"], "the hand-off was reverted without a reason"
    finally:
        ip("link", "del", "e2etshim", check=False)
        os.close(tap)
        lan.close()
    assert run_cnitool(cnitool, agent, "del", "handoff", node.pod_path).code == 0


def _wait_flags(node: Node, up: bool, timeout: float = 5) -> bool:
    deadline = time.monotonic() + timeout
    while ("UP" in (node.pod_link("net1") or {}).get("flags", [])) != up and time.monotonic() < deadline:
        time.sleep(0.02)
    return ("UP" in (node.pod_link("net1") or {}).get("flags", [])) == up


def test_a_hand_off_whose_guest_is_still_here_is_reverted(cnitool, agent, node: Node) -> None:
    """An announcement of a local VM's MAC from the LAN while the VM still runs here (a duplicate MAC elsewhere,
    or a migration that failed after its guest announced): the link goes down, the guest keeps writing to it, and
    the agent sets it up again (agent/handoff.py, REVERT_AFTER) — the VM is back on its NIC and the LAN reaches it;
    a later announcement is acted on again."""
    mac = "02:00:00:00:00:89"
    lan, tap = _vm_on_the_lan(cnitool, agent, node, "revert", "dataplaneMvp7", mac)
    try:
        lan.send(rarp(mac))  # from elsewhere on the LAN
        assert _wait_flags(node, up=False), "the announced VM's link stayed up"
        for _ in range(5):  # the guest, still running here, sends (ARP requests, as a guest does)
            os.write(tap, bytes(VNET_HDR) + rarp(mac))
            time.sleep(0.05)
        assert _wait_flags(node, up=True), "the link of a guest that still runs here stayed down"
        lan.send(rarp(mac))  # known again: a second announcement is acted on as the first
        assert _wait_flags(node, up=False), "the link was forgotten after the revert"
    finally:
        os.close(tap)
        lan.close()
    assert run_cnitool(cnitool, agent, "del", "revert", node.pod_path).code == 0


def test_links_another_plugin_attached_are_adopted_for_the_hand_off(node: Node) -> None:
    """After a take-over from macvtap-cni, or an agent restart, the pods' links were attached by someone else: the
    agent reads them from the pods' namespaces (agent/cni/datapath.adopt, at start and at each reclaim) so that the
    hand-off knows them; a down link (handed off already) is not in the L2 domain and is left out; an entry whose
    namespace is gone is dropped."""
    from macvtapctl.agent.cni.datapath import adopt
    from macvtapctl.agent.link_registry import LinkRegistry

    mac, down_mac = "02:00:00:00:00:8a", "02:00:00:00:00:8b"
    for name, address, state in (("mvtadopt0", mac, "up"), ("mvtadopt1", down_mac, "down")):
        ip("link", "add", name, "link", node.lower, "address", address, "type", "macvtap", "mode", "bridge")
        ip("link", "set", name, "netns", node.pod)
        ip("-n", node.pod, "link", "set", name, "name", "net1" if state == "up" else "net2")
        ip("-n", node.pod, "link", "set", "net1" if state == "up" else "net2", state)
    registry = LinkRegistry()
    registry.attach("02:00:00:00:00:8c", "/run/netns/mvt-gone-long-ago", "net1", node.lower)
    assert adopt(registry) >= 1
    assert registry.attached_to(mac) == (node.pod_path, "net1", node.lower)
    assert registry.attached_to(down_mac) is None and registry.attached_to("02:00:00:00:00:8c") is None
    assert adopt(registry) == 0  # known now: nothing adopted twice
    # At the agent's start (park_down): a down link the agent attached (its alias names the device) is a target
    # it parked before it restarted: parked again, or it would stay down when its guest resumes here. The other
    # plugin's down link (no alias) is still left alone.
    ip("link", "add", "mvtadopt2", "link", node.lower, "address", "02:00:00:00:00:8e", "type", "macvtap", "mode",
       "bridge")
    ip("link", "set", "mvtadopt2", "alias", "mvtadopt2", "netns", node.pod)
    ip("-n", node.pod, "link", "set", "mvtadopt2", "name", "net3")
    assert adopt(registry, park_down=True) == 1
    assert [p["mac"] for p in registry.parked_links()] == ["02:00:00:00:00:8e"] and registry.is_held_down(
        node.pod_path, "net3")


def test_a_migration_targets_link_is_parked_until_its_guest_writes_then_up_and_announced(node: Node) -> None:
    """A migration target (agent/migration_target.py says so at ADD) gets its link parked: down, out of the NIC's
    bridge, so this node's other VMs keep reaching the VM on its source node; CNI CHECK does not call it broken.
    The first frame its guest writes (QEMU's announcement as it resumes here) is dropped by the down link and
    counted: the hand-off sets the link up at once and announces the MAC on the LAN itself (a RARP), since that
    frame was lost. The agent's CNI and hand-off run in-process here, with the real links and /dev/tapN."""
    from macvtapctl.agent.cni import datapath
    from macvtapctl.agent.handoff import HandOff, NamespaceLinks
    from macvtapctl.agent.link_registry import LinkRegistry

    mac, pod = "02:00:00:00:00:8d", ("vms", "virt-launcher-mover-x7k2p")
    node.allocate("dataplaneMvp6")
    registry = LinkRegistry()
    asked: list[tuple[str, str] | None] = []

    def is_target(p: tuple[str, str] | None) -> bool:
        asked.append(p)
        return True

    env = {"CNI_COMMAND": "ADD", "CNI_CONTAINERID": "parked", "CNI_NETNS": node.pod_path, "CNI_IFNAME": "net1",
           "CNI_PATH": "/nonexistent", "CNI_ARGS": f"K8S_POD_NAMESPACE={pod[0]};K8S_POD_NAME={pod[1]};MAC={mac}"}
    conf = {"cniVersion": "1.0.0", "name": "parked", "type": "macvtap", "deviceID": "dataplaneMvp6"}
    handoff = HandOff(registry, NamespaceLinks())
    handoff.start()
    fd = agent_netns.open_netns(f"/run/netns/{node.peer_ns}")
    try:
        with agent_netns.entered(fd):
            lan = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(0x8035))
            lan.bind((node.peer, 0x8035))
    finally:
        os.close(fd)
    lan.settimeout(0.2)
    tap = -1
    try:
        code, out = datapath.handle(env, json.dumps(conf).encode(), registry, is_target=is_target)
        assert code == 0, out
        assert asked == [pod]
        link = node.pod_link("net1")
        assert link is not None and "UP" not in link["flags"] and link["address"] == mac
        assert registry.attached_to(mac) is None, "a parked link is not in the L2 domain"
        check = {**conf, "prevResult": json.loads(out)}
        assert datapath.handle({**env, "CNI_COMMAND": "CHECK"}, json.dumps(check).encode(), registry)[0] == 0
        tap = os.open(f"/dev/tap{link['ifindex']}", os.O_RDWR | os.O_NONBLOCK)
        time.sleep(0.5)
        assert not _wait_flags(node, up=True, timeout=0.1), "the parked link went up with nothing written"
        os.write(tap, bytes(VNET_HDR) + rarp(mac))  # the guest resumes here: QEMU announces, the down link drops it
        assert _wait_flags(node, up=True, timeout=2), "the parked link stayed down after its guest wrote"
        assert registry.attached_to(mac) == (node.pod_path, "net1", node.lower)
        deadline, announced = time.monotonic() + 2, False
        while not announced and time.monotonic() < deadline:
            with contextlib.suppress(TimeoutError):
                announced = lan.recv(2048)[6:12] == _mac_bytes(mac)
        assert announced, "no announcement of the VM's MAC reached the LAN after the link went up"
        assert [e["event"] for e in handoff.recent()] == ["target-up"]
    finally:
        handoff.stop()
        lan.close()
        if tap >= 0:
            os.close(tap)
    assert datapath.handle({**env, "CNI_COMMAND": "DEL"}, json.dumps(conf).encode(), registry)[0] == 0
    assert registry.parked_links() == [] and registry.attached_to(mac) is None
