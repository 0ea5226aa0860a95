"""Two real nodes on one machine (tests/harness/second_node.py: the second in its own namespaces, its lower device on
the same LAN switch): the agent on both, a VM on each, a resource only one of them has, an agent that dies on one
of them. What exists only with more than one node (issue 38)."""

from __future__ import annotations

import json
import subprocess
import time
from pathlib import Path
from typing import Any

import pytest

from macvtapctl.rules import device_plugins as plugins
from tests.e2e_kubevirt.vms import (
    ARRIVAL_IP,
    create_vm,
    diagnostics,
    discovers,
    lan_ping,
    launcher_pod,
    launcher_pods,
    links_up_with_mac,
    links_with_mac,
    mac_of,
    measured_migration,
    neighbour_pod,
    on_the_lan,
    reached_on_console,
    vm_on_node_a,
    vmi,
    wait_lease,
    wait_vmi_running,
)
from tests.harness.cluster import AGENT_NS, NETWORK, POD_NS, Cluster, doctor_findings, wait_for
from tests.harness.controlplane import NODE_NAME
from tests.harness.node import LAN_NETNS, LAN_PEER
from tests.harness.second_node import NAME as NODE_B

NODES = [NODE_NAME, NODE_B]


def doctor_all(c: Cluster) -> dict[str, Any]:
    r = c.mvc("doctor", "-A", "-o", "json", check=False)
    doctor_findings(r)
    return dict(json.loads(r.out))


@pytest.mark.timeout(1200)  # the first test of the package pays for its fixture: two nodes, KubeVirt on both
def test_g_the_agent_serves_both_nodes_and_each_reports(kv_cluster: Cluster) -> None:
    """`install --wait` returned (the fixture) with the agent on both nodes: each node advertises the resource, each
    agent's report reaches doctor, and status lists both nodes' facts."""
    c = kv_cluster
    assert c.second is not None and c.second.running()
    doc = wait_for("both agents' reports", lambda: (d := doctor_all(c))["summary"]["nodesReporting"] == NODES and d,
                   timeout=120, interval=2)
    assert doc["summary"]["configSources"] == dict.fromkeys(NODES, "api"), doc["summary"]
    status = json.loads(c.mvc("status", "-o", "json", check=False).out)
    [agent] = [a for a in status["agents"] if a["kind"] == plugins.AGENT]
    assert (agent["desired"], agent["ready"], agent["configSources"]) == (2, 2, dict.fromkeys(NODES, "api")), agent
    rows = {r["node"]: r for r in status["nodes"] if r["resource"] == NETWORK}
    assert sorted(rows) == NODES and all(int(r["allocatable"]) > 0 for r in rows.values()), status["nodes"]
    handlers = json.loads(c.kubectl("get", "pods", "-n", "kubevirt", "-l", "kubevirt.io=virt-handler", "-o",
                                    "json").out)["items"]
    assert sorted(p["spec"]["nodeName"] for p in handlers) == NODES


@pytest.mark.timeout(900)
def test_h_a_vm_on_each_node_leases_from_the_lan_and_they_reach_each_other(kv_cluster: Cluster,
                                                                          lan_dhcp: Path) -> None:
    """`vm create --node` places one VM on each node; both lease from the LAN's DHCP server and find each other
    across the LAN switch (each guest's broadcast ping, confirmed by a unicast one): node A's macvtap to node B's."""
    c = kv_cluster
    names = {NODE_NAME: "on-a", NODE_B: "on-b"}
    macs = {n: mac_of(create_vm(c, vm, node=n)) for n, vm in names.items()}
    pods = {}
    for n, vm in names.items():
        running = wait_vmi_running(c, vm)
        assert running["status"]["nodeName"] == n, running["status"]
        pods[n] = launcher_pod(c, vm)
        assert pods[n]["spec"]["nodeName"] == n
    leases = {n: wait_lease(c, pods[n], macs[n]) for n in names}
    assert all(lease["server"] == "198.51.100.1" for lease in leases.values()), leases
    assert all(macs[n] in lan_dhcp.read_text().lower() for n in names)
    for me, peer in (NODES, NODES[::-1]):
        found = wait_for(f"{names[me]} reaching {names[peer]} ({leases[peer]['ip']})", lambda me=me, peer=peer: [
            r for r in reached_on_console(c, pods[me]["metadata"]["name"])
            if r["to"] == leases[peer]["ip"] and r["mac"] == macs[me]], timeout=120, interval=2)
        assert found[0]["from"] == leases[me]["ip"], found
    # The LAN's switch learnt each VM's MAC on its own node's port.
    fdb = subprocess.run(["ip", "netns", "exec", LAN_NETNS, "bridge", "-j", "fdb", "show", "br", LAN_PEER],
                         check=True, capture_output=True, text=True).stdout
    ports = {e["mac"]: e.get("ifname") for e in json.loads(fdb)}
    assert (ports.get(macs[NODE_NAME]), ports.get(macs[NODE_B])) == ("port-a", "port-b"), ports
    c.kubectl("delete", "vm", "-n", POD_NS, *names.values(), "--wait=true", timeout=180)


@pytest.mark.timeout(900)
def test_i_a_resource_only_one_node_has_schedules_there_and_doctor_names_the_other(kv_cluster: Cluster) -> None:
    """A second NIC on node A only, exposed: node A advertises it, node B does not; a VM asking for it lands on A,
    and one pinned to B stays Pending while `doctor VM` says B does not advertise it and A does."""
    c = kv_cluster
    subprocess.run(["ip", "link", "add", "e2elan1", "type", "veth", "peer", "name", "port-a1", "netns", LAN_NETNS],
                   check=True)
    try:
        subprocess.run(["ip", "link", "set", "e2elan1", "up"], check=True)
        c.mvc("setup", "e2elan1", "--name", "onlya", "--capacity", "4", "--dp-namespace", AGENT_NS)

        def advertised() -> dict[str, int]:
            nodes = json.loads(c.kubectl("get", "nodes", "-o", "json").out)["items"]
            return {n["metadata"]["name"]: int(n["status"].get("allocatable", {}).get(
                "macvtap.network.kubevirt.io/onlya", "0")) for n in nodes}

        wait_for("node A advertising onlya", lambda: advertised()[NODE_NAME] == 4, timeout=60, interval=1)
        assert advertised()[NODE_B] == 0
        create_vm(c, "onlya-free", network="onlya", node=None)
        assert wait_vmi_running(c, "onlya-free")["status"]["nodeName"] == NODE_NAME
        create_vm(c, "onlya-on-b", network="onlya", node=NODE_B)

        def named() -> dict[str, Any] | None:
            report = c.mvc("doctor", "onlya-on-b", "-n", POD_NS, "-o", "json", check=False)
            return next((f for f in doctor_findings(report) if f["id"] == "workload-insufficient"), None)

        try:
            found = wait_for("doctor naming why onlya-on-b cannot be scheduled", named, timeout=180, interval=3)
        except AssertionError:
            raise AssertionError(diagnostics(c, "onlya-on-b")) from None
        assert f"no node it may run on advertises it ({NODE_B}: is e2elan1" in found["cause"], found
        assert found["cause"].endswith(f"{NODE_NAME} advertises it, but its nodeSelector "
                                       f"kubernetes.io/hostname={NODE_B} rules it out"), found
        assert [p["status"]["phase"] for p in launcher_pods(c, "onlya-on-b")] == ["Pending"]
        assert (vmi(c, "onlya-on-b") or {}).get("status", {}).get("phase") in ("Pending", "Scheduling")
    finally:
        c.kubectl("delete", "vm", "-n", POD_NS, "onlya-free", "onlya-on-b", "--ignore-not-found", "--wait=true",
                  timeout=180, check=False)
        c.mvc("unexpose", "onlya", "--dp-namespace", AGENT_NS, check=False)
        c.kubectl("delete", "net-attach-def", "-n", POD_NS, "onlya", "--ignore-not-found", check=False)
        subprocess.run(["ip", "link", "del", "e2elan1"], check=False)


@pytest.mark.timeout(600)
def test_j_an_agent_killed_on_one_node_is_named_for_that_node_only(kv_cluster: Cluster) -> None:
    """The agent's process on node B killed (the kubelet restarts it): doctor and status name node B's agent and
    its restart, and nothing of the kind for node A."""
    c = kv_cluster
    agent_b = c.agent_pod(NODE_B)
    restarts = agent_b["status"]["containerStatuses"][0]["restartCount"]
    # hostPID: the agent's pod sees its node's processes (node B's only); SIGKILL its main process from inside.
    c.kubectl("exec", "-n", AGENT_NS, agent_b["metadata"]["name"], "--", "python3", "-c",
              "import os, signal\n"
              "for p in filter(str.isdigit, os.listdir('/proc')):\n"
              "    with open(f'/proc/{p}/cmdline', 'rb') as f:\n"
              "        if b'macvtapctl\\x00agent' in f.read() and int(p) != os.getpid():\n"
              "            os.kill(int(p), signal.SIGKILL)\n", check=False)
    wait_for("node B's agent restarted", lambda: c.agent_pod(NODE_B)["status"]["containerStatuses"][0][
        "restartCount"] > restarts, timeout=120, interval=1)
    doc = doctor_all(c)
    found = [f for f in doc["findings"] if f["id"] == "agent-restarts"]
    assert [f["object"] for f in found] == [f"pod/{AGENT_NS}/{agent_b['metadata']['name']}"], found
    assert f"on node {NODE_B}" in found[0]["cause"], found
    status = json.loads(c.mvc("status", "-o", "json", check=False).out)
    said = [w for w in status["warnings"] if "restart(s)" in w]
    assert len(said) == 1 and f"on node {NODE_B}" in said[0], status["warnings"]
    assert c.agent_pod(NODE_NAME)["status"]["containerStatuses"][0]["restartCount"] == 0


@pytest.mark.timeout(1500)
def test_k_a_vm_migrates_with_its_network_and_back(kv_cluster: Cluster, lan_dhcp: Path) -> None:
    """`vm migrate --to --wait` moves a VM from node A to node B while the LAN pings it every 10 ms, and so do a
    neighbour on node A's NIC (kubevirt#5912's victim) and one on node B's (drawn into an idle target link unless it
    is parked): the migration succeeds, the VM keeps its MAC (spec, VMI, the target link) and its lease (no new
    DISCOVER), the LAN's switch learns the MAC on node B's port once and never back, both neighbours' gaps are of
    the LAN's order (the agent's hand-off on A, the parked target on B), the source link is gone once the source
    pod ends; then the VM migrates back."""
    c = kv_cluster
    mac, _, lease = vm_on_node_a(c, "mover")
    neighbour = neighbour_pod(c, "neighbour", NODE_NAME)
    arrival = neighbour_pod(c, "arrival", NODE_B, ARRIVAL_IP)
    check = c.mvc("vm", "migrate", "mover", "-n", POD_NS, "--to", NODE_B, "--check", "-o", "json", check=False)
    assert check.code == 0 and json.loads(check.out)["migratable"], check.out + check.err
    dnsmasq_log = c.node.dir / "lan-dnsmasq.log"
    discovers_before = discovers(dnsmasq_log, mac)
    moved = measured_migration(c, "mover", mac, lease["ip"], NODE_B, neighbour, arrival)
    result = moved.result
    assert (result["phase"], result["source"], result["node"]) == ("Succeeded", NODE_NAME, NODE_B), result
    assert result["macs"] == {NETWORK: {"before": mac, "after": mac}}, result
    # The source agent's own account, read back by `vm migrate --wait` (its node report): one hand-off, no revert.
    assert [(e["event"], e["mac"]) for e in result["handoff"]["events"]] == [("handoff", mac)], result["handoff"]
    print(moved.row())
    # The figures belong in the benchmark; here only bounds no working hand-off comes near.
    assert moved.lan_gap < 3000, f"the LAN lost the VM for {moved.lan_gap:.0f} ms"
    assert moved.beside_gap < max(1000, 3 * moved.lan_gap), f"the neighbour lost it for {moved.beside_gap:.0f} ms"
    # Without the parked target: the whole migration (4.5-5.0 s measured, as on upstream).
    assert moved.arrival_gap is not None and moved.arrival_gap < max(1500, 3 * moved.lan_gap), \
        f"the neighbour on node B lost the VM for {moved.arrival_gap:.0f} ms"
    assert [port for _, port in moved.fdb] == ["port-b"], f"the VM's MAC moved on the LAN switch: {moved.fdb}"
    assert discovers(dnsmasq_log, mac) == discovers_before, "the guest asked for a new lease after the move"
    assert lease["ip"] in lan_dhcp.read_text() and mac in lan_dhcp.read_text().lower()
    [target_pod] = [p for p in launcher_pods(c, "mover") if p["spec"].get("nodeName") == NODE_B]
    netstatus = json.loads(target_pod["metadata"]["annotations"]["k8s.v1.cni.cncf.io/network-status"])
    assert [n["mac"] for n in netstatus if n["name"].endswith(f"/{NETWORK}")] == [mac], netstatus
    agent_log = c.kubectl("logs", "-n", AGENT_NS, c.agent_pod(NODE_NAME)["metadata"]["name"]).out
    assert f"hand-off: {mac} announced from the LAN" in agent_log, agent_log[-2000:]
    # ...and on the VMI, where `kubectl describe vmi` shows it beside KubeVirt's own migration events.
    told = wait_for("node A's agent's MacvtapHandOff Event on the VMI", lambda: handoff_events(c, "mover"), timeout=30)
    assert [(e["reason"], e["type"], e["source"].get("host")) for e in told] == [
        ("MacvtapHandOff", "Normal", NODE_NAME)], told
    assert mac in told[0]["message"], told
    arrived = wait_for("node B's agent's MacvtapTargetUp Event on the VMI",
                       lambda: handoff_events(c, "mover", "MacvtapTargetUp"), timeout=30)
    assert [(e["type"], e["source"].get("host")) for e in arrived] == [("Normal", NODE_B)], arrived
    agent_b_log = c.kubectl("logs", "-n", AGENT_NS, c.agent_pod(NODE_B)["metadata"]["name"]).out
    assert "attached parked (down)" in agent_b_log and f"{mac} announced" in agent_b_log, agent_b_log[-2000:]
    found = {f["id"] for f in doctor_findings(c.mvc("doctor", "-A", "-o", "json", check=False))}
    assert not found & {"migration-source-up", "migration-handoff-off"}, found  # node A's link left the L2 domain
    wait_for(f"no link with {mac} left on node A", lambda: not links_with_mac(mac), timeout=60)

    back = c.mvc("vm", "migrate", "mover", "-n", POD_NS, "--to", NODE_NAME, "--wait", "-o", "json", check=False)
    assert back.code == 0 and json.loads(back.out)["node"] == NODE_NAME, back.err + back.out
    assert lan_ping(lease["ip"]), "the LAN lost the VM after it came back"
    c.kubectl("delete", "pod", "-n", POD_NS, "neighbour", "arrival", "--wait=true", timeout=120)
    c.kubectl("delete", "vm", "-n", POD_NS, "mover", "--wait=true", timeout=180)


def handoff_events(c: Cluster, vmi: str, reason: str = "MacvtapHandOff") -> list[dict[str, Any]]:
    """The agent's Events about the VMI whose reason starts with `reason` (agent/events.py)."""
    listed = json.loads(c.kubectl("get", "events", "-n", POD_NS, "--field-selector",
                                  f"involvedObject.kind=VirtualMachineInstance,involvedObject.name={vmi}",
                                  "-o", "json").out)["items"]
    return [e for e in listed if e.get("reason", "").startswith(reason)]


SLOW = {"apiVersion": "migrations.kubevirt.io/v1alpha1", "kind": "MigrationPolicy", "metadata": {"name": "e2e-slow"},
        "spec": {"bandwidthPerMigration": "1Mi", "selectors": {  # KubeVirt's selectors are plain label maps
            "virtualMachineInstanceSelector": {"e2e-migration": "slow"}}}}


@pytest.mark.timeout(900)
def test_l_an_aborted_migration_leaves_the_vm_and_its_network_where_they_were(kv_cluster: Cluster,
                                                                             lan_dhcp: Path) -> None:
    """The migration object deleted while it runs (`virtctl migrate-cancel` does that): KubeVirt aborts, the VM
    stays on node A, the LAN's switch never learns its MAC elsewhere, the source link never leaves the L2 domain
    (no announcement came from elsewhere, so the agent did nothing), and the LAN keeps reaching the VM. A
    MigrationPolicy of 1 MiB/s (KubeVirt's own knob) keeps the migration running long enough to abort it."""
    c = kv_cluster
    policy = Path(c.node.dir) / "slow-policy.json"
    policy.write_text(json.dumps(SLOW))
    c.kubectl("apply", "-f", str(policy))
    try:
        mac, _, lease = vm_on_node_a(c, "stayer", "--label", "e2e-migration=slow")
        with on_the_lan(lease["ip"], mac) as (lan, fdb):
            start = time.time()
            made = c.mvc("vm", "migrate", "stayer", "-n", POD_NS, "--to", NODE_B, "-o", "json")
            name = json.loads(made.out)["metadata"]["name"]

            def running() -> bool:
                state = (vmi(c, "stayer") or {}).get("status", {}).get("migrationState") or {}
                return bool(state.get("startTimestamp")) and not state.get("completed")

            wait_for("the migration to be under way", running, timeout=300, interval=0.5)
            time.sleep(2)
            c.kubectl("delete", "vmim", "-n", POD_NS, name, "--wait=false")

            def ended() -> dict[str, Any] | None:
                # KubeVirt's word for an aborted migration: abortStatus and an endTimestamp (not `completed`).
                state = (vmi(c, "stayer") or {}).get("status", {}).get("migrationState") or {}
                return state if state.get("endTimestamp") or state.get("completed") else None

            state = wait_for("KubeVirt to end the aborted migration", ended, timeout=300, interval=1)
            done = time.time()
            time.sleep(3)
        assert state.get("abortStatus") == "Succeeded" and state.get("failed"), \
            f"the migration was not aborted (it ended first?): {state}"
        after = vmi(c, "stayer")
        assert after is not None and after["status"]["nodeName"] == NODE_NAME, after
        assert fdb.moves == [], f"the VM's MAC moved on the LAN switch although it never left: {fdb.moves}"
        # Up with the VM's MAC: its link on node A only (node B's namespace may hold the aborted target's link,
        # given back down by its DEL, still carrying the MAC until the device's next pod).
        links = links_up_with_mac(mac)
        up = [k for k, is_up in links.items() if is_up]
        assert len(up) == 1 and not up[0].startswith("macvtapctl-e2e-b/"), f"node A's link is not the one up: {links}"
        gap = lan.gap_after(start, done + 3)
        print(f"aborted migration: {done - start:.1f}s; LAN: max gap {gap:.0f} ms, {lan.lost(start, done + 3)} lost")
        assert gap < 1000, f"the LAN lost the VM for {gap:.0f} ms during a migration that never happened"
        assert lan_ping(lease["ip"]), "the LAN cannot reach the VM after the abort"
        agent_log = c.kubectl("logs", "-n", AGENT_NS, c.agent_pod(NODE_NAME)["metadata"]["name"]).out
        assert f"hand-off: {mac}" not in agent_log, agent_log[-2000:]
        assert handoff_events(c, "stayer") == []  # nothing to say on the VMI either
        wait_for("the target pod on node B to end", lambda: not [
            p for p in launcher_pods(c, "stayer") if p["spec"].get("nodeName") == NODE_B
            and p["status"].get("phase") in ("Pending", "Running")], timeout=120, interval=1)
    finally:
        c.kubectl("delete", "vm", "-n", POD_NS, "stayer", "--ignore-not-found", "--wait=true", timeout=180)
        c.kubectl("delete", "migrationpolicy", "e2e-slow", "--ignore-not-found")


@pytest.mark.timeout(900)
def test_m_a_drain_moves_a_live_migrate_vm_with_its_network(kv_cluster: Cluster, lan_dhcp: Path) -> None:
    """`kubectl drain` of the VM's node, as an admin drains one for a kernel upgrade, with the VM's
    `evictionStrategy: LiveMigrate` (`vm create --eviction-strategy`): KubeVirt's eviction webhook turns the
    eviction into a migration, and the VM reaches node B with its MAC, lease and network as `vm migrate` gives
    it (the LAN's switch learns it on node B's port once, the agent hands off on node A)."""
    c = kv_cluster
    mac, _, lease = vm_on_node_a(c, "drained", "--eviction-strategy", "LiveMigrate")
    dnsmasq_log = c.node.dir / "lan-dnsmasq.log"
    discovers_before = discovers(dnsmasq_log, mac)
    try:
        with on_the_lan(lease["ip"], mac) as (lan, fdb):
            start = time.time()
            # Only the VM's launcher: the node's other pods are the other tests' (an admin drains them all).
            drain = c.kubectl("drain", NODE_NAME, "--pod-selector", "vm.kubevirt.io/name=drained",
                              "--ignore-daemonsets", "--delete-emptydir-data", "--timeout", "5m", check=False,
                              timeout=400)
            done = time.time()
            time.sleep(3)
    finally:
        c.kubectl("uncordon", NODE_NAME)
    try:
        assert drain.code == 0, drain.err + drain.out
        after = vmi(c, "drained")
        assert after is not None and after["status"]["nodeName"] == NODE_B, after
        state = after["status"].get("migrationState") or {}
        assert state.get("completed") and not state.get("failed") and state.get("sourceNode") == NODE_NAME, state
        assert {i["name"]: i.get("mac") for i in after["status"]["interfaces"]}.get(NETWORK) == mac
        window = (start, done + 3)
        gap = lan.gap_after(*window)
        print(f"drain: {done - start:.1f}s; LAN: max gap {gap:.0f} ms, {lan.lost(*window)} lost; FDB: {fdb.moves}")
        assert gap < 3000, f"the LAN lost the VM for {gap:.0f} ms"
        assert [port for _, port in fdb.moves] == ["port-b"], f"the VM's MAC moved on the LAN switch: {fdb.moves}"
        assert discovers(dnsmasq_log, mac) == discovers_before, "the guest asked for a new lease after the move"
        agent_log = c.kubectl("logs", "-n", AGENT_NS, c.agent_pod(NODE_NAME)["metadata"]["name"]).out
        assert f"hand-off: {mac} announced from the LAN" in agent_log, agent_log[-2000:]
        assert lan_ping(lease["ip"]), "the LAN cannot reach the VM on node B"
    finally:
        c.kubectl("delete", "vm", "-n", POD_NS, "drained", "--wait=true", timeout=180)
