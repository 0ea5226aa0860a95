"""Issue 13.8: the device plugin failing must make the agent exit non-zero (the kubelet then restarts it)."""

from __future__ import annotations

import asyncio

import pytest

from macvtapctl.agent import daemon
from macvtapctl.agent.config import AgentConfig


class FakeServer:
    def __init__(self) -> None:
        self.stopped = False

    async def start(self) -> None:
        pass

    async def stop(self) -> None:
        self.stopped = True


class CrashingManager:
    def __init__(self) -> None:
        self.stopped = False

    async def run(self) -> None:
        await asyncio.sleep(0)
        raise RuntimeError("kubelet socket vanished for good")

    async def stop(self) -> None:
        self.stopped = True


def test_a_failed_device_plugin_stops_the_agent_with_an_error_after_cleaning_up() -> None:
    server, manager = FakeServer(), CrashingManager()
    with pytest.raises(daemon.AgentFailed, match="kubelet socket vanished for good"):
        asyncio.run(daemon._serve(server, None, manager))
    assert server.stopped and manager.stopped  # sockets removed before exiting


def test_the_doctor_route_serves_the_latest_node_report() -> None:
    import json

    from macvtapctl.agent.observability import HealthServer, Metrics

    latest: dict = {}

    def ok() -> tuple[bool, str]:
        return True, "ok"

    health = HealthServer("127.0.0.1", 0, Metrics(), ok, ok, report=lambda: latest.get("r"))
    assert health.route("/doctor")[0] == 503  # before the first round
    latest["r"] = {"node": "n1", "checks": [{"id": "kind-dev", "status": "ok"}]}
    status, ctype, body = health.route("/doctor")
    assert (status, ctype) == (200, "application/json") and json.loads(body)["node"] == "n1"
    assert HealthServer("127.0.0.1", 0, Metrics(), ok, ok).route("/doctor")[0] == 404  # no report configured


def test_the_report_carries_live_migration_facts_over_the_periodic_checks() -> None:
    """The node checks run once a minute; the links in the L2 domain and the hand-offs are read at each request
    (doctor's migration-source-up compares them with where KubeVirt runs each VM), and a node without the hand-off
    says why (migration-handoff-off)."""
    from macvtapctl.agent.link_registry import LinkRegistry

    registry = LinkRegistry()
    report = daemon.NodeReport(AgentConfig(), source=None, handoffs=list, links=registry.attached_links,  # type: ignore[arg-type]
                               handoff_off="cannot open a packet socket")
    assert report.latest() is None  # before the first round
    report.report = {"node": "n1", "checks": []}
    registry.attach("02:00:00:00:00:AA", "/run/netns/p", "net1", "eth1")
    got = report.latest()
    assert got is not None and got["links"] == [{"mac": "02:00:00:00:00:aa", "netns": "/run/netns/p", "ifname": "net1",
                                                 "lower": "eth1"}]
    assert got["handoff"] == {"enabled": False, "why": "cannot open a packet socket"} and got["handoffs"] == []
    registry.detach("/run/netns/p", "net1")  # a hand-off (or DEL): out of the L2 domain at once
    assert report.latest()["links"] == []  # type: ignore[index]


def test_the_dhcp_probe_route_takes_only_a_configured_resource(tmp_path) -> None:
    """The health port is on the node's address: the probe never takes a link name, only a resource of the
    current configuration, validated first (no link is created for a refused request)."""
    import json

    from macvtapctl.agent.deviceplugin.config_source import ConfigSource
    from macvtapctl.agent.observability import HealthServer, Metrics

    conf = tmp_path / "DP_MACVTAP_CONF"
    conf.write_text('[{"name": "dataplane", "lowerDevice": "eth1"}]')
    cfg = AgentConfig(config_file=str(conf), node_name="n1")
    source = ConfigSource(path=str(conf))

    def ok() -> tuple[bool, str]:
        return True, "ok"

    health = HealthServer("127.0.0.1", 0, Metrics(), ok, ok, probe_dhcp=lambda r: daemon.probe_dhcp(cfg, source, r))
    status, _, body = health.route("/probe/dhcp", "resource=..%2Fetc")
    assert status == 400 and "invalid resource name" in json.loads(body)["error"]
    status, _, body = health.route("/probe/dhcp", "resource=other")
    assert status == 404 and "exposed: dataplane" in json.loads(body)["error"]
    assert HealthServer("127.0.0.1", 0, Metrics(), ok, ok).route("/probe/dhcp", "resource=x")[0] == 404


def test_the_agents_flags_default_to_its_config() -> None:
    """Each default once: `macvtapctl agent`'s options take theirs from AgentConfig (agent/config.py)."""
    import inspect

    from macvtapctl.agent.config import DEFAULTS
    from macvtapctl.cli.agent import agent

    params = inspect.signature(agent).parameters
    for flag, field in (("cni_socket", "cni_socket"), ("gc_min_age", "gc_min_age"), ("workers", "workers"),
                        ("device_plugin_dir", "plugin_dir"), ("pod_resources_socket", "pod_resources_socket"),
                        ("reclaim_interval", "reclaim_interval"), ("report_interval", "report_interval")):
        assert params[flag].default == getattr(DEFAULTS, field), flag
    assert params["metrics_address"].default == f"{DEFAULTS.metrics_host}:{DEFAULTS.metrics_port}"


def test_the_report_reads_which_plugins_the_kubelet_holds_from_the_kernels_rows() -> None:
    """Issue 37 item 5, on real sockets: the agent's plugin (served as on a node: bound under a private name, renamed
    into place) and a macvtap-cni-named one; a gRPC client dialling as the kubelet does makes ours connected, a
    client on upstream's makes it one of the others, and both go when the clients close."""
    import shutil
    import socket
    import tempfile
    import time

    from grpc import aio

    from macvtapctl.agent.deviceplugin import api_pb2 as pb
    from macvtapctl.agent.deviceplugin import api_pb2_grpc as rpc
    from macvtapctl.agent.deviceplugin.plugin import ResourcePlugin
    from macvtapctl.rules.dpconfig import Entry

    plugin_dir = tempfile.mkdtemp(prefix="kp", dir="/tmp")  # short: a unix socket path has 107 bytes
    upstream_path = f"{plugin_dir}/macvtap.network.kubevirt.io_dataplane"
    resource = "macvtap.network.kubevirt.io/dataplane"

    def read() -> dict:
        return daemon.kubelet_plugins(plugin_dir, [resource])[resource]

    async def settle(expected: dict) -> dict:
        deadline = time.monotonic() + 5  # a server closes its end when it reads the client's EOF
        while (got := read()) != expected and time.monotonic() < deadline:
            await asyncio.sleep(0.05)
        return got

    async def scenario() -> None:
        async def allocate(dev: str, entry: Entry) -> str:
            return "/dev/tap0"

        ours = ResourcePlugin(Entry(name="dataplane", lower_device="eth1"), plugin_dir, allocate)
        await ours.serve()
        upstream = socket.socket(socket.AF_UNIX)
        upstream.bind(upstream_path)
        upstream.listen()
        try:
            assert read() == {"advertised": True, "ours": False, "others": []}  # serving, nobody dialled
            async with aio.insecure_channel(f"unix://{ours.path}") as channel:
                await rpc.DevicePluginStub(channel).GetDevicePluginOptions(pb.Empty(), timeout=5)  # type: ignore[no-untyped-call]
                assert read() == {"advertised": True, "ours": True, "others": []}
                client = socket.socket(socket.AF_UNIX)
                client.connect(upstream_path)
                accepted, _ = upstream.accept()
                assert read() == {"advertised": True, "ours": True, "others": [upstream_path]}
                client.close()
                accepted.close()
            assert await settle({"advertised": True, "ours": False, "others": []}) == \
                {"advertised": True, "ours": False, "others": []}
        finally:
            upstream.close()
            await ours.stop()

    try:
        asyncio.run(scenario())
    finally:
        shutil.rmtree(plugin_dir, ignore_errors=True)
