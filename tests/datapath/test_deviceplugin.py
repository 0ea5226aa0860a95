"""The device plugin against a kubelet stand-in, then the CNI with the allocated device, on real links."""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from macvtapctl.agent.link_name import temporary_link_name
from tests.datapath.helpers import Node, host_mvt_links, ip, run_shim
from tests.harness.kubelet import FakeKubelet

PREFIX = "macvtap.network.kubevirt.io/"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class DPAgent:
    dir: Path
    config: Path
    kubelet: FakeKubelet
    shim_dir: str
    metrics_port: int
    proc: subprocess.Popen[bytes] | None = None

    @property
    def cni_socket(self) -> str:
        return str(self.dir / "cni.sock")

    def write_config(self, entries: list | str) -> None:
        tmp = self.config.with_suffix(".tmp")
        tmp.write_text(entries if isinstance(entries, str) else json.dumps(entries))
        tmp.replace(self.config)  # like a ConfigMap volume update: atomic

    def start(self, *extra: str) -> None:
        log = open(self.dir / "agent.log", "ab")  # noqa: SIM115 - lives with the process
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "macvtapctl", "agent", "--cni-socket", self.cni_socket,
             "--device-plugin-dir", str(self.kubelet.dir), "--config-file", str(self.config),
             "--metrics-address", f"127.0.0.1:{self.metrics_port}", "--gc-min-age", "1", "--log-level", "debug",
             "--pod-resources-socket", self.kubelet.pod_resources_socket,
             "--reclaim-interval", "0",  # reclaim only on CNI GC: deterministic
             # No periodic node report: its /dev/tapN test link would race this suite's link accounting (the
             # report has tests of its own: test_node_report.py, the e2e).
             "--report-interval", "0",
             *extra], stdout=log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 20
        while not self._accepting():  # a SIGKILLed agent leaves its socket file behind
            assert self.proc.poll() is None, self.log()
            assert time.monotonic() < deadline, self.log()
            time.sleep(0.05)

    def _accepting(self) -> bool:
        with socket.socket(socket.AF_UNIX) as s:
            try:
                s.connect(self.cni_socket)
            except OSError:
                return False
        return True

    def log(self) -> str:
        return (self.dir / "agent.log").read_text(errors="replace")

    def http(self, path: str) -> tuple[int, str]:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{self.metrics_port}{path}", timeout=5) as r:
                return r.status, r.read().decode()
        except urllib.error.HTTPError as exc:
            return exc.code, exc.read().decode()
        except urllib.error.URLError:  # not listening yet: the health server starts after the CNI socket
            return 0, ""

    def stop(self, sig: int = signal.SIGTERM) -> int | None:
        if self.proc is None or self.proc.poll() is not None:
            return self.proc.returncode if self.proc else None
        self.proc.send_signal(sig)
        try:
            return self.proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            # Seen once (2026-12-07, right after the integration suite): say what the agent was doing.
            self.proc.kill()
            self.proc.wait()
            raise AssertionError(f"the agent did not exit within 20 s of signal {sig}; its log:\n"
                                 f"{self.log()[-6000:]}") from None


@pytest.fixture
def dp(agent) -> Iterator[DPAgent]:
    # Unix socket paths are limited to 107 bytes: keep the directory short (pytest's tmp_path is not).
    tmp_path = Path(tempfile.mkdtemp(prefix="dp", dir="/tmp"))
    kubelet = FakeKubelet(tmp_path / "dp")
    kubelet.start()
    a = DPAgent(dir=tmp_path, config=tmp_path / "dp.json", kubelet=kubelet, shim_dir=agent.bin_dir,
                metrics_port=free_port())
    yield a
    a.stop(signal.SIGKILL)
    kubelet.stop()
    shutil.rmtree(tmp_path, ignore_errors=True)


def ids(name: str, n: int) -> list[tuple[str, str]]:
    return [(f"{name}Mvp{i}", "Healthy") for i in range(n)]


def test_full_node_flow(dp: DPAgent, node: Node, cnitool) -> None:
    ip("link", "set", node.lower, "txqueuelen", "1234")
    res = f"dp{node.tag}"
    dp.write_config([{"name": res, "lowerDevice": node.lower, "mode": "vepa", "capacity": 4}])
    dp.start()
    k = dp.kubelet
    k.wait(lambda: k.devices(PREFIX + res) == ids(res, 4))
    reg = k.registrations[-1]
    assert (reg.version, reg.endpoint, reg.resource_name) == ("v1beta1", f"macvtapctl-{res}.sock",
                                                              PREFIX + res)
    resp = k.allocate(PREFIX + res, [f"{res}Mvp2"])
    (spec,) = resp.container_responses[0].devices
    tmp = temporary_link_name(f"{res}Mvp2")
    link = json.loads(ip("-j", "-d", "link", "show", tmp).stdout)[0]
    assert spec.host_path == spec.container_path == f"/dev/tap{link['ifindex']}" and spec.permissions == "rw"
    assert os.path.exists(spec.host_path)
    assert link["linkinfo"]["info_data"]["mode"] == "vepa"
    assert link["txqlen"] == 1234 and "UP" in link["flags"]
    # Allocate again (a retried sandbox): the leftover is deleted and the link made anew, not duplicated.
    (again,) = k.allocate(PREFIX + res, [f"{res}Mvp2"]).container_responses[0].devices
    anew = json.loads(ip("-j", "-d", "link", "show", tmp).stdout)[0]
    assert anew["ifindex"] != link["ifindex"] and again.host_path == f"/dev/tap{anew['ifindex']}"
    assert tmp in host_mvt_links()
    # Multus would now call the CNI with the allocated device ID.
    conf = {"cniVersion": "1.1.0", "name": "dp", "type": "macvtap", "deviceID": f"{res}Mvp2"}
    r = run_shim_env(dp, "ADD", node.pod_path, conf)
    assert r.code == 0, r.stdout
    assert node.pod_link("net1")["linkinfo"]["info_kind"] == "macvtap"
    assert run_shim_env(dp, "DEL", node.pod_path, conf).code == 0
    status, body = dp.http("/metrics")
    assert status == 200
    assert f'macvtapctl_devices_advertised{{resource="{res}"}} 4.0' in body
    assert 'macvtapctl_allocate_seconds_count{result="ok"} 2.0' in body
    assert 'macvtapctl_cni_seconds_count{command="ADD",result="ok"} 1.0' in body
    assert dp.http("/readyz") == (200, "ok\n") and dp.http("/healthz") == (200, "ok\n")


def run_shim_env(dp: DPAgent, command: str, netns: str, conf: dict):
    from tests.datapath.helpers import Agent

    a = Agent(dir=dp.dir, socket=dp.cni_socket, bin_dir=dp.shim_dir, conf_dir=dp.dir)
    return run_shim(a, {"CNI_COMMAND": command, "CNI_CONTAINERID": "c1", "CNI_NETNS": netns, "CNI_IFNAME": "net1",
                        "CNI_PATH": dp.shim_dir}, json.dumps(conf).encode())


def test_lower_device_removed_and_readded(dp: DPAgent, node: Node) -> None:
    res = f"lw{node.tag}"
    dp.write_config([{"name": res, "lowerDevice": node.lower, "capacity": 3}])
    dp.start()
    k = dp.kubelet
    k.wait(lambda: k.devices(PREFIX + res) == ids(res, 3))
    ip("link", "del", node.lower)
    k.wait(lambda: k.devices(PREFIX + res) == [])
    ip("link", "add", node.lower, "type", "veth", "peer", "name", node.peer)
    k.wait(lambda: k.devices(PREFIX + res) == ids(res, 3))


def test_kubelet_restart_reregisters(dp: DPAgent, node: Node) -> None:
    """Behaviour only (the time it takes is a benchmark figure: benchmarks/deviceplugin.py, and the real-node
    e2e prints it)."""
    res = f"kr{node.tag}"
    dp.write_config([{"name": res, "lowerDevice": node.lower, "capacity": 2}])
    dp.start()
    k = dp.kubelet
    k.wait(lambda: k.devices(PREFIX + res) == ids(res, 2))
    before = len(k.registrations)
    k.restart()
    k.wait(lambda: len(k.registrations) > before and k.devices(PREFIX + res) == ids(res, 2), timeout=30)
    assert k.registrations[-1].resource_name == PREFIX + res


def test_config_changes_take_effect_without_restart(dp: DPAgent, node: Node) -> None:
    a, b = f"ca{node.tag}", f"cb{node.tag}"
    dp.write_config([{"name": a, "lowerDevice": node.lower, "capacity": 2}])
    dp.start()
    k = dp.kubelet
    k.wait(lambda: k.devices(PREFIX + a) == ids(a, 2))
    dp.write_config([{"name": a, "lowerDevice": node.lower, "capacity": 5},
                     {"name": b, "lowerDevice": node.lower, "capacity": 1}])
    k.wait(lambda: k.devices(PREFIX + a) == ids(a, 5) and k.devices(PREFIX + b) == ids(b, 1))
    dp.write_config([{"name": b, "lowerDevice": node.lower, "capacity": 1}])
    k.wait(lambda: not (k.dir / f"macvtapctl-{a}.sock").exists())
    assert dp.proc.poll() is None  # same process all along


def test_malformed_config_keeps_last_good_and_bad_entries_are_skipped(dp: DPAgent, node: Node) -> None:
    good, legacy = f"gd{node.tag}", f"lg{node.tag}"
    dp.write_config([{"name": good, "lowerDevice": node.lower, "capacity": 2},
                     {"name": legacy, "master": node.lower}])
    dp.start()
    k = dp.kubelet
    k.wait(lambda: k.devices(PREFIX + good) == ids(good, 2))
    assert PREFIX + legacy not in k.plugins
    k.wait(lambda: f"entry '{legacy}': key 'master' is not read" in dp.log(), timeout=5)
    dp.write_config('[{"name": "x", "lowerDevice": "eth0"}')  # truncated
    k.wait(lambda: "keeping the last good configuration" in dp.log(), timeout=5)
    time.sleep(0.5)
    assert k.devices(PREFIX + good) == ids(good, 2)
    assert (k.dir / f"macvtapctl-{good}.sock").exists()


def test_trailing_comma_is_accepted_with_a_warning(dp: DPAgent, node: Node) -> None:
    """The KubeVirt user guide's example ends its array with `},`: upstream crash-loops on it; the agent serves it
    and says so."""
    res = f"tc{node.tag}"
    dp.write_config(f'[\n  {{"name": "{res}", "lowerDevice": "{node.lower}", "capacity": 3}},\n]')
    dp.start()
    k = dp.kubelet
    k.wait(lambda: k.devices(PREFIX + res) == ids(res, 3))
    assert "trailing comma at line 2" in dp.log()


def test_what_upstream_reads_is_served_with_warnings_and_counted(dp: DPAgent, node: Node) -> None:
    """Issue 13.1 on the agent: key case, an extra key, capacity 0, a duplicated name (the last wins) and
    passthru are served as upstream serves them; each is a warning in the log and a counter in /metrics."""
    a, b, p = f"kc{node.tag}", f"dn{node.tag}", f"pt{node.tag}"
    dp.write_config(f'''[{{"Name": "{a}", "LowerDevice": "{node.lower}", "Capacity": 0, "comment": "x"}},
        {{"name": "{b}", "lowerDevice": "nosuchnic0", "capacity": 2}},
        {{"name": "{b}", "lowerDevice": "{node.lower}", "capacity": 3}},
        {{"name": "{p}", "lowerDevice": "{node.lower}", "mode": "passthru", "capacity": 5}},]''')
    dp.start()
    k = dp.kubelet
    k.wait(lambda: k.devices(PREFIX + a) == ids(a, 100))
    k.wait(lambda: k.devices(PREFIX + b) == ids(b, 3))
    k.wait(lambda: k.devices(PREFIX + p) == ids(p, 1))
    metrics = dp.http("/metrics")[1]
    for kind in ("key_case", "unknown_key", "capacity_zero", "duplicate_name", "passthru_capacity",
                 "trailing_comma"):
        assert f'macvtapctl_config_tolerated_total{{kind="{kind}"}} 1.0' in metrics, kind
    assert "macvtapctl_config_entries_refused 0.0" in metrics
    log = dp.log()
    assert "read 'Name' as 'name'" in log and "duplicate name; entry 2 is used" in log
    assert dp.http("/readyz") == (200, "ok\n")


def test_passthru_allocates_the_whole_lower_device(dp: DPAgent, node: Node) -> None:
    """Upstream advertises passthru and then fails every Allocate ("unknown macvtap mode"); the agent serves it."""
    res = f"pa{node.tag}"
    dp.write_config([{"name": res, "lowerDevice": node.lower, "mode": "passthru"}])
    dp.start()
    k = dp.kubelet
    k.wait(lambda: k.devices(PREFIX + res) == ids(res, 1))
    k.allocate(PREFIX + res, [f"{res}Mvp0"])
    tmp = temporary_link_name(f"{res}Mvp0")
    out = subprocess.run(["ip", "-d", "link", "show", tmp], capture_output=True, text=True, check=True).stdout
    assert "macvtap mode passthru" in out
    ip("link", "del", tmp)


def test_a_configuration_that_registers_nothing_is_not_ready(dp: DPAgent, node: Node) -> None:
    """Upstream's `master` key and an empty name register nothing: the agent says so on /readyz, never "ok"."""
    dp.write_config([{"name": "legacy", "master": node.lower}, {"name": "", "lowerDevice": node.lower}])
    dp.start()

    def not_ready() -> str | None:
        status, body = dp.http("/readyz")
        return body if status == 503 else None

    body = dp.kubelet.wait(not_ready)
    assert body.startswith("no resource can be registered: ")
    assert "entry 'legacy': key 'master' is not read by the device plugin: write 'lowerDevice'" in body
    assert "missing name" in body
    res = f"ok{node.tag}"
    dp.write_config([{"name": res, "lowerDevice": node.lower, "capacity": 2}])
    dp.kubelet.wait(lambda: dp.http("/readyz") == (200, "ok\n"))


def test_the_health_port_drops_oversized_or_endless_requests(dp: DPAgent, node: Node) -> None:
    """Issue 13.16: the port is reachable from the network; a request head is bounded in size (8 KiB) and the
    server keeps answering real probes."""
    dp.write_config([{"name": f"hp{node.tag}", "lowerDevice": node.lower, "capacity": 1}])
    dp.start()
    dp.kubelet.wait(lambda: dp.http("/healthz")[0] == 200)
    with socket.create_connection(("127.0.0.1", dp.metrics_port), timeout=10) as conn:
        try:
            conn.sendall(b"GET /metrics HTTP/1.1\r\n")
            for _ in range(200):  # 200 headers of ~110 bytes: past both bounds, never the blank line
                conn.sendall(b"X-Pad: " + b"a" * 100 + b"\r\n")
        except (BrokenPipeError, ConnectionResetError):
            pass  # the server stopped reading: what we want
        try:
            answer = conn.recv(65536)
        except ConnectionResetError:
            answer = b""
        # refused (431 Request Header Fields Too Large) or cut off: never served
        assert answer == b"" or answer.split(b" ", 2)[1] == b"431", answer[:80]
    assert dp.http("/healthz") == (200, "ok\n")


def test_capacity_1000(dp: DPAgent, node: Node) -> None:
    res = f"big{node.tag}"
    dp.write_config([{"name": res, "lowerDevice": node.lower, "capacity": 1000}])
    dp.start()
    k = dp.kubelet
    devices = k.wait(lambda: k.devices(PREFIX + res) if len(k.devices(PREFIX + res) or []) == 1000 else None)
    assert devices[999] == (f"{res}Mvp999", "Healthy")


def test_expose_all_follows_links(dp: DPAgent, node: Node) -> None:
    dp.write_config("[]")
    dp.start("--veth-is-physical")
    k = dp.kubelet
    k.wait(lambda: k.devices(PREFIX + node.lower) == ids(node.lower, 100))
    extra = f"x{node.tag}"
    ip("link", "add", extra, "type", "veth", "peer", "name", f"y{node.tag}")
    try:
        k.wait(lambda: k.devices(PREFIX + extra) == ids(extra, 100))
    finally:
        ip("link", "del", extra)
    k.wait(lambda: not (k.dir / f"macvtapctl-{extra}.sock").exists())


def test_sigkill_mid_flow_then_gc_reclaims(dp: DPAgent, node: Node, cnitool) -> None:
    res = f"sk{node.tag}"
    dp.write_config([{"name": res, "lowerDevice": node.lower, "capacity": 2}])
    dp.start()
    k = dp.kubelet
    k.wait(lambda: k.devices(PREFIX + res) == ids(res, 2))
    k.allocate(PREFIX + res, [f"{res}Mvp0"])
    tmp = temporary_link_name(f"{res}Mvp0")
    assert tmp in host_mvt_links()
    dp.stop(signal.SIGKILL)  # the pod never got its CNI ADD: the link would leak
    dp.start()
    gc = {"cniVersion": "1.1.0", "name": "dp", "type": "macvtap", "cni.dev/valid-attachments": []}
    assert run_shim_env(dp, "GC", "", gc).code == 0
    assert tmp in host_mvt_links()  # first seen by this agent just now: too young to reclaim
    time.sleep(1.2)
    k.owned = {f"{res}Mvp0"}  # a live pod still holds the device (its volumes are slow): never reclaimed
    assert run_shim_env(dp, "GC", "", gc).code == 0
    assert tmp in host_mvt_links()
    k.owned = set()  # the kubelet no longer lists it: dead, reclaimed
    assert run_shim_env(dp, "GC", "", gc).code == 0
    assert tmp not in host_mvt_links()
    assert "macvtapctl_leaked_links_reclaimed_total 1.0" in dp.http("/metrics")[1]


def test_sigterm_is_a_clean_shutdown(dp: DPAgent, node: Node) -> None:
    res = f"st{node.tag}"
    dp.write_config([{"name": res, "lowerDevice": node.lower, "capacity": 1}])
    dp.start()
    k = dp.kubelet
    k.wait(lambda: k.devices(PREFIX + res) == ids(res, 1))
    assert dp.stop(signal.SIGTERM) == 0
    assert not (k.dir / f"macvtapctl-{res}.sock").exists()
    assert not os.path.exists(dp.cni_socket)


def test_allocate_unknown_device_is_rejected(dp: DPAgent, node: Node) -> None:
    import grpc

    res = f"ud{node.tag}"
    dp.write_config([{"name": res, "lowerDevice": node.lower, "capacity": 1}])
    dp.start()
    k = dp.kubelet
    k.wait(lambda: k.devices(PREFIX + res) == ids(res, 1))
    with pytest.raises(grpc.RpcError) as info:
        k.allocate(PREFIX + res, ["otherMvp0"])
    assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT


def test_agent_check(dp: DPAgent, node: Node) -> None:
    cfg = dp.dir / "check.json"
    cfg.write_text(json.dumps([{"name": "ok", "lowerDevice": node.lower}, {"name": "gone", "lowerDevice": "nope0"}]))
    base = [sys.executable, "-m", "macvtapctl", "agent", "check", "-o", "json", "--config-file", str(cfg),
            "--device-plugin-dir", str(dp.kubelet.dir)]
    r = subprocess.run(base, capture_output=True, text=True, check=False)
    doc = json.loads(r.stdout)
    status = {c["check"]: c["status"] for c in doc["checks"]}
    assert status[f"lower device {node.lower}"] == "ok"
    assert status["lower device nope0"] == "error"
    assert status["/dev/tapN visible"] == "ok"
    assert status["kubelet socket"] == "ok"
    assert r.returncode == 8 and doc["ok"] is False
    cfg.write_text(json.dumps([{"name": "ok", "lowerDevice": node.lower}]))
    leak = node.allocate("leakedMvp0")
    r = subprocess.run(base, capture_output=True, text=True, check=False)
    doc = json.loads(r.stdout)
    leaked = next(c for c in doc["checks"] if c["check"] == "leaked links")
    assert leaked["status"] == "warning" and leak in leaked["detail"]
    assert r.returncode == 0  # warnings do not fail the check
    ip("link", "del", leak)


def test_a_plugin_that_takes_our_socket_is_left_alone(dp: DPAgent, node: Node) -> None:
    """On a switch back to macvtap-cni its plugin binds the resource's socket path after the agent: the agent must
    not take it back (the two would fight over the kubelet), says so on /readyz, and on SIGTERM leaves the other's
    socket; once the other's socket is gone the agent serves and registers again."""
    res = f"dx{node.tag}"
    dp.write_config([{"name": res, "lowerDevice": node.lower, "capacity": 2}])
    dp.start()
    k = dp.kubelet
    k.wait(lambda: k.devices(PREFIX + res) == ids(res, 2))
    k.wait(lambda: dp.http("/readyz") == (200, "ok\n"))
    path = k.dir / f"macvtapctl-{res}.sock"

    def take(sock_path: Path) -> socket.socket:
        """Bind beside and rename over: the agent never sees the path missing (no race with its re-serve)."""
        other = socket.socket(socket.AF_UNIX)
        tmp = sock_path.with_name(sock_path.name + ".other")
        other.bind(str(tmp))
        other.listen()
        os.replace(tmp, sock_path)
        return other

    before = len(k.registrations)
    other = take(path)
    inode = os.stat(path).st_ino
    def not_ready() -> str | None:
        status, text = dp.http("/readyz")
        return text if status == 503 else None

    body = k.wait(not_ready)
    assert body.strip() == f"another device plugin serves {PREFIX}{res} on this node", body
    assert "another device plugin now serves" in dp.log()
    # Many rounds of its socket check (every 0.2 s) later, it still has neither re-bound nor registered.
    time.sleep(1.5)
    assert os.stat(path).st_ino == inode and len(k.registrations) == before

    other.close()
    path.unlink()  # the other plugin went away, cleaning up its socket as upstream's does
    k.wait(lambda: len(k.registrations) > before and dp.http("/readyz") == (200, "ok\n"))
    assert k.registrations[-1].resource_name == PREFIX + res and os.stat(path).st_ino != inode

    third = take(path)
    inode = os.stat(path).st_ino
    k.wait(lambda: dp.http("/readyz")[0] == 503)
    assert dp.stop(signal.SIGTERM) == 0
    assert path.exists() and os.stat(path).st_ino == inode  # its socket, not ours: left to it
    third.close()
