"""The whole chain on a real node: kubelet + containerd + runc + Multus, the agent deployed by `install` as a
DaemonSet, pods with macvtap interfaces, frames to a LAN namespace and back.

The files run in name order (test_3_uninstall.py last), and the tests in each in file order. Figures a test prints (re-registration time, capacity
latency) are measurements for the closing note, not assertions: benchmarks/ owns timings.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import signal
import subprocess
import time
from pathlib import Path

from tests.harness.cluster import (
    AGENT_NS,
    CAPACITY,
    LOWER,
    NAD_MTU,
    NETWORK,
    POD_NS,
    Cluster,
    doctor_findings,
    host_links,
    lan_ip,
    lower_index,
    no_mvt_links,
    pod_netns,
    wait_for,
)
from tests.harness.controlplane import NODE_NAME
from tests.harness.images import AGENT_IMAGE

MAC = "02:00:5e:10:00:01"
GUIDE_CONF = """[
    {
        "name"        : "guide",
        "lowerDevice" : "e2elan0",
        "mode"        : "bridge",
        "capacity"    : 50
    },
]"""  # the KubeVirt user guide's example, trailing comma and all; only the NIC's name differs on this node


def _network_status(pod: dict) -> list[dict]:
    return json.loads(pod["metadata"]["annotations"].get("k8s.v1.cni.cncf.io/network-status", "[]"))


def _idle(c: Cluster) -> None:
    """No test pods, allocatable back to full, no temporary links on the node, no pod namespaces but the agent's."""
    wait_for("allocatable back to capacity", lambda: c.capacity(field="allocatable") == CAPACITY, timeout=60)
    no_mvt_links()


def test_a_node_advertises_the_resource_and_status_is_complete(cluster: Cluster) -> None:
    assert cluster.capacity() == CAPACITY
    ds = cluster.daemonset()
    assert ds["status"]["numberReady"] == 1
    assert cluster.agent_pod()["spec"]["nodeName"] == NODE_NAME
    status = cluster.mvc("status", check=False)
    assert status.code == 0, status.err + status.out
    assert "dataplane" in status.out


def test_a2_nothing_of_the_test_cluster_leaves_this_machine(cluster: Cluster) -> None:
    """While the node is up, an address of the Service range nothing answers, and a pod subnet no node has, are
    routed into the node's drop link, never out of the default route; the `kubernetes` Service is answered here
    (kube-proxy runs on every node)."""
    import socket

    from tests.harness.node import DROP_LINK

    def route(addr: str) -> str:
        out = subprocess.run(["ip", "-j", "route", "get", addr], capture_output=True, text=True, check=True).stdout
        return str(json.loads(out)[0]["dev"])

    def sent() -> int:  # what the drop link was given and dropped
        return int(Path(f"/sys/class/net/{DROP_LINK}/statistics/tx_dropped").read_text())

    assert route("10.0.0.250") == DROP_LINK and route("10.88.200.7") == DROP_LINK
    before = sent()
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        for _ in range(3):
            s.sendto(b"nowhere", ("10.88.200.7", 9))  # a pod subnet no node has
        # An unused Service address: kube-proxy rejects it here (no such Service), else the drop link takes it.
        try:
            s.sendto(b"nowhere", ("10.0.0.250", 9))
            extra = 1
        except PermissionError:
            extra = 0
    assert sent() >= before + 3 + extra  # taken and dropped by the drop link, not sent out of eth0
    assert route("10.0.0.1") == DROP_LINK  # kube-proxy DNATs it before it would be sent there
    with socket.create_connection(("10.0.0.1", 443), timeout=5):
        pass  # the `kubernetes` Service reaches the API server on this machine


def test_b_pod_gets_a_macvtap_from_allocate_through_multus(cluster: Cluster) -> None:
    cluster.make_pod("web", networks=[{"name": NETWORK, "mac": MAC}])
    pod = cluster.wait_running("web")
    info = cluster.interface("web")
    # Allocate happened (the device is in the container) and Multus passed its deviceID (the link was found).
    assert info["mac"] == MAC
    assert info["mtu"] == str(NAD_MTU)
    assert info["iflink"] == str(lower_index()), "net1 must be a macvtap on the lower device"
    assert info["taps"] == f"tap{info['ifindex']}", "net1 must be a macvtap (it has a tap device)"
    assert f"/dev/tap{info['ifindex']}:107:107" in info["dev"].split(), info
    status = {s["name"]: s for s in _network_status(pod)}
    entry = status[f"{POD_NS}/{NETWORK}"]
    assert entry["interface"] == "net1" and entry["mac"] == MAC


def test_c_frames_reach_the_lan_and_replies_come_back(cluster: Cluster) -> None:
    info = cluster.interface("web")
    done = cluster.arp("web", f"/dev/tap{info['ifindex']}", MAC)
    assert done.code == 0, done.err
    peer_mac = lan_ip("-j", "link", "show", "lan0")
    assert json.loads(peer_mac)[0]["address"] in done.out
    # The LAN side learned the pod's MAC from the request: the frame really crossed the lower device.
    assert MAC in lan_ip("neigh", "show")
    cluster.delete_pods("web")
    _idle(cluster)


def test_d_failed_sandbox_recovers_and_unattached_links_are_reclaimed(cluster: Cluster) -> None:
    from macvtapctl.kube.resources import NAD

    broken = {"apiVersion": "k8s.cni.cncf.io/v1", "kind": "NetworkAttachmentDefinition",
              "metadata": {"name": "second", "namespace": POD_NS},
              "spec": {"config": json.dumps({"cniVersion": "0.3.1", "name": "second", "type": "e2e-no-such-plugin"})}}
    with cluster.kube() as kube:
        kube.create(NAD, broken, POD_NS)
    try:
        cluster.make_pod("retry", networks=[{"name": NETWORK, "mac": "02:00:5e:10:00:02"}, {"name": "second"}])
        wait_for("a failed sandbox", lambda: "FailedCreatePodSandBox" in cluster.events("retry"), timeout=90)
        # Fix the second network: the kubelet retries the sandbox without a new Allocate.
        fixed = {"cniVersion": "0.3.1", "name": "second", "type": "bridge", "bridge": "e2ebr1"}
        with cluster.kube() as kube:
            kube.merge_patch(NAD, "second", {"spec": {"config": json.dumps(fixed)}}, POD_NS)
        cluster.wait_running("retry", timeout=180)
        assert cluster.interface("retry")["mac"] == "02:00:5e:10:00:02"
        cluster.delete_pods("retry")
    finally:
        with cluster.kube() as kube:
            kube.delete(NAD, "second", POD_NS)
    _idle(cluster)
    # A pod that requests the resource but has no Multus network for it: its link is reclaimed after it is gone.
    cluster.make_pod("nonet", networks=None)
    try:
        cluster.wait_running("nonet")
        # Allocated, never attached: it stays on the node while the pod lives. Links the kubelet's sandbox GC returns
        # later (the retry pod's failed sandboxes, DEL'd after the pod is gone) are reclaimed meanwhile: wait for
        # them to go rather than count at one instant.
        wait_for("only nonet's allocated link on the node", lambda: len(host_links()) == 1, timeout=120)
        first = host_links()
        time.sleep(5)
        assert first <= host_links()  # the live pod's link is kept (a late-returned one may come and go beside it)
    finally:
        cluster.delete_pods("nonet")  # whatever happened: the next tests start idle
    _idle(cluster)


def test_e_churn_every_pod_gets_its_interface_nothing_leaks(cluster: Cluster) -> None:
    netns_before = pod_netns()
    names = [f"churn-{i}" for i in range(30)]
    for i, name in enumerate(names):
        cluster.make_pod(name, networks=[{"name": NETWORK, "mac": f"02:00:5e:20:00:{i:02x}"}])
    done: set[str] = set()
    deadline = time.monotonic() + 600
    while len(done) < len(names):
        assert time.monotonic() < deadline, f"churn stalled; done {len(done)} of {len(names)}"
        for name in names:
            pod = cluster.pod(name)
            if name in done or not pod or pod.get("status", {}).get("phase") != "Running":
                continue
            mac = f"02:00:5e:20:00:{names.index(name):02x}"
            assert cluster.interface(name)["mac"] == mac
            cluster.delete_pods(name, wait=False)
            done.add(name)
        time.sleep(1)
    wait_for("churn pods gone", lambda: not [p for p in cluster.pods() if p.startswith("churn-")], timeout=180)
    _idle(cluster)
    # A pod deleted with grace 0 leaves the API before the kubelet has torn its sandbox down (CNI DEL, then the
    # netns removed): the namespaces go a little later, and one still here after that is a leak.
    try:
        wait_for("pod namespaces removed", lambda: pod_netns() <= netns_before, timeout=120)
    except AssertionError:
        raise AssertionError(f"leaked pod namespaces: {pod_netns() - netns_before}") from None


def test_f_kubelet_restart_keeps_pods_and_reregisters(cluster: Cluster) -> None:
    cluster.make_pod("steady", networks=[{"name": NETWORK, "mac": "02:00:5e:30:00:01"}])
    cluster.wait_running("steady")
    kubelet_socket = Path("/var/lib/kubelet/device-plugins/kubelet.sock")
    registered = "registered macvtap.network.kubevirt.io/dataplane with the kubelet"
    before = _agent_log().count(registered)
    cluster.node.restart_kubelet()
    wait_for("the kubelet's socket", kubelet_socket.exists, timeout=60, interval=0.02)
    t0 = time.monotonic()
    wait_for("the agent to re-register", lambda: _agent_log().count(registered) > before, timeout=30,
             interval=0.05)
    print(f"\nre-registered within {time.monotonic() - t0:.2f}s of the kubelet's socket appearing")
    wait_for("the kubelet to serve", cluster.node.kubelet_healthy, timeout=60)
    assert cluster.interface("steady")["mac"] == "02:00:5e:30:00:01"
    cluster.make_pod("after-restart", networks=[{"name": NETWORK, "mac": "02:00:5e:30:00:02"}])
    cluster.wait_running("after-restart")
    assert cluster.interface("after-restart")["mac"] == "02:00:5e:30:00:02"
    cluster.delete_pods("steady", "after-restart")
    _idle(cluster)


def test_g_expose_and_unexpose_follow_without_restarting_the_agent(cluster: Cluster) -> None:
    before = cluster.agent_pod()
    subprocess.run(["ip", "link", "add", "e2elan1", "type", "veth", "peer", "name", "e2elan1p"], check=True)
    try:
        subprocess.run(["ip", "link", "set", "e2elan1", "up"], check=True)
        t0 = time.monotonic()
        # --wait returns once the node serves the change: nothing left to poll for. The kubelet syncs mounted
        # ConfigMaps on its default period (1m): the agent follows the ConfigMap through the API server (issue 27),
        # so the change is served within the kubelet's node-status period (STATUS_PERIOD, what reaches the Node's
        # allocatable) plus 3 s, whatever that period is (issue 37).
        from tests.harness.node import STATUS_PERIOD

        done = cluster.mvc("expose", "e2elan1", "--name", "second", "--capacity", "3", "--dp-namespace", AGENT_NS,
                           "--wait", "--timeout", f"{STATUS_PERIOD + 3}s")
        assert done.err.strip().splitlines()[-1] == "every node serves the change", done.err
        assert cluster.capacity("macvtap.network.kubevirt.io/second", field="allocatable") == 3
        print(f"\nexpose --wait -> returned, Node allocatable 3, in {time.monotonic() - t0:.1f}s")
        t0 = time.monotonic()
        done = cluster.mvc("unexpose", "second", "--dp-namespace", AGENT_NS, "--wait", "--timeout", "90s")
        assert done.err.strip().splitlines()[-1] == "every node serves the change", done.err
        assert not cluster.capacity("macvtap.network.kubevirt.io/second", field="allocatable")
        print(f"unexpose --wait -> returned, Node allocatable 0, in {time.monotonic() - t0:.1f}s")
    finally:
        subprocess.run(["ip", "link", "del", "e2elan1"], check=False)
    after = cluster.agent_pod()
    assert after["metadata"]["uid"] == before["metadata"]["uid"]
    assert after["status"]["containerStatuses"][0]["restartCount"] == before["status"]["containerStatuses"][0][
        "restartCount"]
    assert cluster.capacity() == CAPACITY


def test_h_the_user_guide_configmap_works(cluster: Cluster) -> None:
    """The guide's ConfigMap, verbatim (trailing comma included), and the guide's NAD shape: it works, and
    both the agent's log and `status` name the comma."""
    from macvtapctl.kube.resources import NAD

    original = cluster.dp_config()
    cluster.set_dp_config(GUIDE_CONF)
    nad = {"apiVersion": "k8s.cni.cncf.io/v1", "kind": "NetworkAttachmentDefinition",
           "metadata": {"name": "macvtapnetwork", "namespace": POD_NS,
                        "annotations": {"k8s.v1.cni.cncf.io/resourceName": "macvtap.network.kubevirt.io/guide"}},
           "spec": {"config": '{ "cniVersion": "0.3.1", "name": "macvtapnetwork", "type": "macvtap", "mtu": 1500 }'}}
    try:
        with cluster.kube() as kube:
            kube.create(NAD, nad, POD_NS)
        wait_for("the guide's resource", lambda: cluster.capacity("macvtap.network.kubevirt.io/guide") == 50,
                 timeout=60)
        cluster.make_pod("guide", networks=[{"name": "macvtapnetwork"}], resource="macvtap.network.kubevirt.io/guide")
        cluster.wait_running("guide")
        assert cluster.interface("guide")["mtu"] == "1500"
        logs = cluster.kubectl("logs", "-n", AGENT_NS, cluster.agent_pod()["metadata"]["name"]).out
        assert "trailing comma" in logs
        status = cluster.mvc("status", check=False)
        assert "trailing comma" in status.out + status.err
        cluster.delete_pods("guide")
    finally:
        with cluster.kube() as kube:
            kube.delete(NAD, "macvtapnetwork", POD_NS)
        cluster.set_dp_config(original)
    wait_for("dataplane back", lambda: cluster.capacity(field="allocatable") == CAPACITY, timeout=60)
    no_mvt_links()


def test_k_the_documented_in_pod_agent_check_passes(cluster: Cluster) -> None:
    """Issue 13.5: docs/install.md's `kubectl -n macvtap exec ds/macvtapctl-agent -- macvtapctl agent check`
    finds the agent's configuration and directories (from the container's environment) and passes."""
    r = cluster.kubectl("-n", AGENT_NS, "exec", "ds/macvtapctl-agent", "--", "macvtapctl", "agent", "check",
                        "-o", "json", check=False)
    assert r.code == 0, r.out + r.err
    checks = {c["check"]: c for c in json.loads(r.out)["checks"]}
    assert checks["configuration"]["status"] == "ok", checks["configuration"]
    assert checks["lower device e2elan0"]["status"] == "ok"
    assert checks["kubelet socket"]["status"] == "ok"


def test_l_doctor_reads_the_node_report_through_the_pod_proxy(cluster: Cluster) -> None:
    """doctor on the real node: the agent's report (GET /doctor) arrives through the API server's pod proxy, the
    node's own checks pass, and a NAD whose mtu the lower device cannot carry is named with the fix that works."""
    from macvtapctl.kube.resources import NAD

    def run() -> dict:
        r = cluster.mvc("doctor", "-A", "-o", "json", check=False)
        assert r.code in (0, 8), r.err
        return json.loads(r.out)

    doc = wait_for("the agent's first report", lambda: (d := run())["summary"]["nodesReporting"] and d, timeout=90)
    assert doc["summary"]["nodesReporting"] == [NODE_NAME], doc["summary"]
    # The agent follows its ConfigMap through the API server with the Role install gave it (no config-source).
    assert doc["summary"]["configSources"] == {NODE_NAME: "api"}, doc["summary"]
    status = json.loads(cluster.mvc("status", "-o", "json", check=False).out)
    assert [a.get("configSources") for a in status["agents"]] == [{NODE_NAME: "api"}], status["agents"]
    node_ids = {f["id"] for f in doc["findings"] if f["object"] == f"node/{NODE_NAME}" and f["severity"] == "error"}
    assert node_ids == set(), doc["findings"]  # /dev/tapN visible, kubelet socket and CNI binary found
    # A healthy node is silent beyond the documented info findings, and what is true of this one: it is a VM
    # (virtualised-node, from DMI), its NIC is a veth (l2-nested-lower), and tests g and h left resources the
    # kubelet keeps after their ConfigMap entries went (stale-resource, each with its fix).
    true_here = {"virtualised-node", "l2-nested-lower", "stale-resource"}
    loud = [f for f in doc["findings"] if f["severity"] != "info" and f["id"] not in true_here]
    # The report is up to --report-interval old: a temporary link an earlier test's pod held then may be named
    # (allocated, not yet attached, reclaimed since); one that is still on the node is a real leak.
    for f in [f for f in loud if f["id"] == "leaked-links"]:
        named = set(re.findall(r"mvt[0-9a-f]{12}", f["cause"]))
        assert named and not named & host_links(), (f, host_links())
        loud.remove(f)
    assert loud == [], loud
    assert not [f for f in doc["findings"] if f["id"] == "kind-dev"], doc["findings"]
    mtu = int(Path(f"/sys/class/net/{LOWER}/mtu").read_text()) + 1000
    cluster.mvc("nad", "create", "toobig", "-n", POD_NS, "--resource", NETWORK, "--mtu", str(mtu))
    try:
        [f] = [f for f in run()["findings"] if f["id"] == "nad-mtu"]
        assert f["object"] == f"networkattachmentdefinition/{POD_NS}/toobig" and f"on node {NODE_NAME}" in f["cause"]
        cluster.mvc(*f["fix"].split()[1:])
        assert [f for f in run()["findings"] if f["id"] == "nad-mtu"] == []
    finally:
        with cluster.kube() as kube:
            kube.delete(NAD, "toobig", POD_NS)


def test_m_a_cni_plugin_outside_the_runtimes_path_is_named_by_doctor_and_its_fix_runs_the_pod(
        cluster: Cluster, tmp_path: Path) -> None:
    """The agent installed with a CNI bin dir the runtime does not read (the default /opt/cni/bin where the node
    reads another): a pod on the macvtap network stays in ContainerCreating with libcni's "failed to find plugin";
    doctor names it from the pod's events, its printed fix (install with the runtime's dir and the running image)
    makes the pod run."""
    wrong = tmp_path / "cni-bin"
    shim = cluster.node.cni_bin / "macvtap"
    cluster.mvc("install", "--image", AGENT_IMAGE, "--cni-bin-dir", str(wrong), "--wait", "--timeout", "3m")
    shim.unlink()  # what a node that never had the plugin in its runtime's dir looks like
    try:
        cluster.make_pod("nocni", networks=[{"name": NETWORK, "mac": "02:00:5e:40:00:01"}])

        def finding() -> dict | None:
            r = cluster.mvc("doctor", "-A", "-o", "json", check=False)
            found = [f for f in doctor_findings(r) if f["id"] == "workload-cni-not-found"
                     and f["object"] == f"pod/{POD_NS}/nocni"]
            return found[0] if found and r.code == 8 else None

        f = wait_for("doctor naming the CNI path", finding, timeout=120, interval=2)
        assert str(cluster.node.cni_bin) in f["cause"], f
        argv = shlex.split(f["fix"])
        assert argv[:2] == ["macvtapctl", "install"] and argv[argv.index("--image") + 1] == AGENT_IMAGE, f
        cluster.mvc(*argv[1:])
        cluster.wait_running("nocni", timeout=180)
        assert cluster.interface("nocni")["mac"] == "02:00:5e:40:00:01"
        assert finding() is None
    finally:
        cluster.delete_pods("nocni")
        if not shim.exists():
            cluster.mvc("install", "--image", AGENT_IMAGE, "--cni-bin-dir", str(cluster.node.cni_bin), "--wait",
                        "--timeout", "3m")
    _idle(cluster)


def test_n_a_resource_nobody_exposed_is_named_by_doctor_and_its_fix_schedules_the_pod(cluster: Cluster) -> None:
    """A NAD for a resource the ConfigMap does not expose: the pod stays Pending ("Insufficient
    macvtap.network.kubevirt.io/extra"); doctor reads the scheduler's event, says the resource is not exposed and
    gives `expose LOWER_DEVICE --name extra` (the NIC is the user's to choose: the one placeholder); run with this
    node's NIC, the pod runs."""
    cluster.mvc("nad", "create", "extra", "-n", POD_NS, "--resource", "extra")
    cluster.make_pod("needs-extra", networks=[{"name": "extra", "mac": "02:00:5e:50:00:01"}],
                     resource="macvtap.network.kubevirt.io/extra")
    try:
        def finding() -> dict | None:
            r = cluster.mvc("doctor", "-A", "-o", "json", check=False)
            found = [f for f in doctor_findings(r) if f["id"] == "workload-insufficient"
                     and f["object"] == f"pod/{POD_NS}/needs-extra"]
            return found[0] if found else None

        f = wait_for("doctor naming the unexposed resource", finding, timeout=90, interval=2)
        assert "'extra'" in f["cause"] and "not exposed" in f["cause"], f
        argv = shlex.split(f["fix"])
        assert argv[:2] == ["macvtapctl", "expose"] and "LOWER_DEVICE" in argv, f
        cluster.mvc(*[LOWER if a == "LOWER_DEVICE" else a for a in argv[1:]], "--dp-namespace", AGENT_NS)
        cluster.wait_running("needs-extra", timeout=120)
        assert cluster.interface("needs-extra")["mac"] == "02:00:5e:50:00:01"
        assert finding() is None
    finally:
        cluster.delete_pods("needs-extra")
        cluster.mvc("nad", "delete", "extra", "-n", POD_NS, check=False)
        cluster.mvc("unexpose", "extra", "--dp-namespace", AGENT_NS, check=False)
    _idle(cluster)


def test_o_a_mac_already_on_the_lower_device_is_named_by_doctor(cluster: Cluster) -> None:
    """Two pods asking for one MAC on one lower device: the second's sandbox is refused by the CNI (the kernel's
    EADDRINUSE); doctor names it from the pod's events, and the pod recreated with another MAC, as the fix says,
    runs."""
    mac = "02:00:5e:60:00:01"
    cluster.make_pod("mac-first", networks=[{"name": NETWORK, "mac": mac}])
    cluster.wait_running("mac-first")
    cluster.make_pod("mac-second", networks=[{"name": NETWORK, "mac": mac}])
    try:
        def finding() -> dict | None:
            r = cluster.mvc("doctor", "-A", "-o", "json", check=False)
            found = [f for f in doctor_findings(r) if f["id"] == "workload-mac-in-use"
                     and f["object"] == f"pod/{POD_NS}/mac-second"]
            return found[0] if found and r.code == 8 else None

        f = wait_for("doctor naming the MAC in use", finding, timeout=120, interval=2)
        assert mac in f["cause"] and "give the pod another MAC" in f["fix"], f
        cluster.delete_pods("mac-second")
        cluster.make_pod("mac-second", networks=[{"name": NETWORK, "mac": "02:00:5e:60:00:02"}])
        cluster.wait_running("mac-second", timeout=120)
        assert finding() is None
    finally:
        cluster.delete_pods("mac-first", "mac-second")
    _idle(cluster)


def _agent_log() -> str:
    """The agent container's log as the kubelet writes it on the node (readable while the kubelet is down)."""
    return "".join(p.read_text(errors="replace") for p in Path("/var/log/pods").glob(f"{AGENT_NS}_*/agent/*.log"))


def test_j_agent_sigkill_mid_churn_leaks_nothing(cluster: Cluster) -> None:
    restarts = cluster.agent_pod()["status"]["containerStatuses"][0]["restartCount"]
    names = [f"kill-{i}" for i in range(6)]
    for i, name in enumerate(names[:3]):
        cluster.make_pod(name, networks=[{"name": NETWORK, "mac": f"02:00:5e:40:00:{i:02x}"}])
    os.kill(cluster.agent_pid(), signal.SIGKILL)
    # Ready (its /readyz) means registered with the kubelet again: pods admitted before that fail admission
    # ("no healthy devices"), as with upstream's plugin.
    def restarted_and_ready() -> bool:
        st = cluster.agent_pod()["status"]["containerStatuses"][0]
        return bool(st["restartCount"] > restarts and st.get("ready"))

    wait_for("the kubelet to restart the agent", restarted_and_ready, timeout=120)
    for i, name in enumerate(names[3:], start=3):
        cluster.make_pod(name, networks=[{"name": NETWORK, "mac": f"02:00:5e:40:00:{i:02x}"}])
    for name in names[3:]:
        cluster.wait_running(name, timeout=120)
        assert cluster.interface(name)["mac"].startswith("02:00:5e:40:00:")
    cluster.delete_pods(*names)
    _idle(cluster)
