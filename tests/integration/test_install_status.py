"""install / uninstall / status / kind-config against the real API server (built-in schemas, strict)."""

from __future__ import annotations

import json
import time

import pytest
import yaml

from macvtapctl.errors import ExitCode
from macvtapctl.kube.resources import (
    CLUSTER_ROLE,
    CLUSTER_ROLE_BINDING,
    CONFIGMAP,
    DAEMONSET,
    NAD,
    NAMESPACE,
    NETWORK_ADDONS_CONFIG,
    NODE,
    POD,
    ROLE,
    ROLE_BINDING,
    SERVICE_ACCOUNT,
    VIRTUAL_MACHINE,
    VIRTUAL_MACHINE_INSTANCE,
)
from tests.conftest import resource_versions, vm_manifest

NS = "macvtap"
CM = "macvtap-deviceplugin-config"
AGENT = "macvtapctl-agent"
OBJECTS = [(NAMESPACE, NS, None), (SERVICE_ACCOUNT, AGENT, NS), (ROLE, AGENT, NS), (ROLE_BINDING, AGENT, NS),
           (CLUSTER_ROLE, AGENT, None), (CLUSTER_ROLE_BINDING, AGENT, None), (CONFIGMAP, CM, NS),
           (DAEMONSET, AGENT, NS)]


@pytest.fixture(autouse=True)
def clean(control_plane):
    def wipe() -> None:
        with control_plane.kube() as k:
            for res, name, ns in [(DAEMONSET, AGENT, NS), (SERVICE_ACCOUNT, AGENT, NS)]:
                if k.get_or_none(res, name, ns):
                    k.delete(res, name, ns)
            for cm in k.list(CONFIGMAP, field_selector=f"metadata.name={CM}"):
                k.delete(CONFIGMAP, CM, cm["metadata"]["namespace"])
            for n in k.list(NAD):
                k.delete(NAD, n["metadata"]["name"], n["metadata"]["namespace"])
            for n in k.list(NODE):
                k.delete(NODE, n["metadata"]["name"])
            for p in k.list(POD, NS):
                k.delete(POD, p["metadata"]["name"], NS, grace_period=0)  # no kubelet would confirm it
            for vm in k.list(VIRTUAL_MACHINE):
                k.delete(VIRTUAL_MACHINE, vm["metadata"]["name"], vm["metadata"]["namespace"])
            for vmi in k.list(VIRTUAL_MACHINE_INSTANCE):
                k.delete(VIRTUAL_MACHINE_INSTANCE, vmi["metadata"]["name"], vmi["metadata"]["namespace"])
    wipe()
    control_plane.reset_kubevirt("v1.5.0")
    yield
    wipe()


def test_install_is_accepted_strictly_and_idempotent(cli, admin, control_plane) -> None:
    r = cli("--kubeconfig", admin, "install", "--image", "registry.example/macvtapctl:v1", "--node-selector",
            "macvtap=yes", "--toleration", "dedicated=vm:NoSchedule")
    assert r.exit_code == 0, r.stderr
    for label in ("namespace/macvtap", "serviceaccount/macvtapctl-agent", "role.rbac.authorization.k8s.io/"
                  "macvtapctl-agent", "rolebinding.rbac.authorization.k8s.io/macvtapctl-agent",
                  "clusterrole.rbac.authorization.k8s.io/macvtapctl-agent",
                  "clusterrolebinding.rbac.authorization.k8s.io/macvtapctl-agent",
                  "configmap/macvtap-deviceplugin-config", "daemonset.apps/macvtapctl-agent"):
        # (the Role and its binding do not depend on the flags: an earlier test's install may have made them)
        assert any(f"{label} {word}" in r.stderr for word in ("created", "configured") + (
            ("unchanged",) if label.startswith(("role", "clusterrole")) else ())), (label, r.stderr)
    with control_plane.kube() as k:
        ds = k.get(DAEMONSET, AGENT, NS)
        cm = k.get(CONFIGMAP, CM, NS)
        role = k.get(ROLE, AGENT, NS)
        binding = k.get(ROLE_BINDING, AGENT, NS)
    # The agent's one API permission: read its ConfigMap, by name; its token only in the agent container.
    assert role["rules"] == [{"apiGroups": [""], "resources": ["configmaps"], "resourceNames": [CM],
                              "verbs": ["get", "list", "watch"]}]
    assert binding["subjects"] == [{"kind": "ServiceAccount", "name": AGENT, "namespace": NS}]
    assert ds["spec"]["template"]["spec"]["automountServiceAccountToken"] is False
    pod = ds["spec"]["template"]["spec"]
    sc = pod["containers"][0]["securityContext"]
    assert sc["privileged"] is False and sc["capabilities"]["drop"] == ["ALL"]
    assert set(sc["capabilities"]["add"]) == {"NET_ADMIN", "SYS_ADMIN", "SYS_PTRACE", "CHOWN", "NET_RAW"}
    assert pod["hostNetwork"] and pod["hostPID"] and pod["priorityClassName"] == "system-node-critical"
    assert pod["nodeSelector"] == {"macvtap": "yes"}
    assert pod["tolerations"] == [{"key": "dedicated", "operator": "Equal", "value": "vm", "effect": "NoSchedule"}]
    mounts = {m["mountPath"]: m for m in pod["containers"][0]["volumeMounts"]}
    assert mounts["/run/netns"]["mountPropagation"] == "HostToContainer"
    assert {"/dev", "/var/lib/kubelet/device-plugins", "/host/cni-bin", "/run/macvtapctl"} <= set(mounts)
    assert mounts["/var/run/secrets/kubernetes.io/serviceaccount"]["readOnly"] is True
    assert cm["data"]["DP_MACVTAP_CONF"] == "[]"
    before = resource_versions(control_plane, OBJECTS)
    r = cli("--kubeconfig", admin, "install", "--image", "registry.example/macvtapctl:v1", "--node-selector",
            "macvtap=yes", "--toleration", "dedicated=vm:NoSchedule")
    assert r.exit_code == 0
    assert [line.split()[-1] for line in r.stderr.splitlines()] == ["unchanged"] * 8
    assert resource_versions(control_plane, OBJECTS) == before


def test_existing_namespace_gets_configured(cli, admin, control_plane) -> None:
    with control_plane.kube() as k:
        if k.get_or_none(NAMESPACE, NS) is not None:
            k.merge_patch(NAMESPACE, NS, {"metadata": {"labels": None}})
        else:
            k.create(NAMESPACE, {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": NS}})
    r = cli("--kubeconfig", admin, "install")
    assert "namespace/macvtap configured" in r.stderr
    with control_plane.kube() as k:
        labels = k.get(NAMESPACE, NS)["metadata"]["labels"]
    assert labels["pod-security.kubernetes.io/enforce"] == "privileged"


def test_existing_configmap_survives_install(cli, admin, control_plane) -> None:
    assert cli("--kubeconfig", admin, "expose", "eth0", "--name", "dataplane").exit_code == 0
    before = resource_versions(control_plane, [(CONFIGMAP, CM, NS)])
    assert cli("--kubeconfig", admin, "install").exit_code == 0
    assert resource_versions(control_plane, [(CONFIGMAP, CM, NS)]) == before
    with control_plane.kube() as k:
        assert json.loads(k.get(CONFIGMAP, CM, NS)["data"]["DP_MACVTAP_CONF"])[0]["name"] == "dataplane"


def test_dry_runs(cli, admin, control_plane) -> None:
    r = cli("--kubeconfig", admin, "install", "--dry-run=client", "-o", "yaml")
    docs = list(yaml.safe_load_all(r.stdout))
    assert [d["kind"] for d in docs] == ["Namespace", "ServiceAccount", "Role", "RoleBinding", "ClusterRole",
                                         "ClusterRoleBinding", "ConfigMap", "DaemonSet"]
    r = cli("--kubeconfig", admin, "install", "--dry-run=server")
    assert r.exit_code == 0, r.stderr
    assert r.stderr.count("(server dry run)") == 8
    with control_plane.kube() as k:
        assert k.get_or_none(DAEMONSET, AGENT, NS) is None


def test_bad_install_input(cli, admin) -> None:
    for args, needle in ((["--node-selector", "nope"], '"nope"'), (["--toleration", "k:Sometimes"], "effect"),
                         (["--cni-bin-dir", "relative"], '"relative"'), (["--via", "helm"], '"helm"'),
                         (["--device-plugin-config", "x"], "--via cnao"), (["-n", "Bad_NS"], '"Bad_NS"')):
        r = cli("--kubeconfig", admin, "install", *args)
        assert r.exit_code == ExitCode.USAGE, (args, r.stderr)
        assert needle in r.stderr


def _node(name: str, alloc: dict[str, str], labels: dict[str, str] | None = None) -> dict:
    return {"apiVersion": "v1", "kind": "Node", "metadata": {"name": name, "labels": labels or {}}}


def _set_node_status(k, name: str, resources: dict[str, str]) -> None:
    k.merge_patch(NODE, name, {"status": {"capacity": resources, "allocatable": resources}}, subresource="status")


def _set_ds_status(k, desired: int, ready: int, *, observed: bool = True) -> None:
    """What the DaemonSet controller would write (no controller runs on this control plane)."""
    generation = k.get(DAEMONSET, AGENT, NS)["metadata"]["generation"]
    k.merge_patch(DAEMONSET, AGENT, {"status": {"desiredNumberScheduled": desired, "numberReady": ready,
                                                "updatedNumberScheduled": ready, "currentNumberScheduled": desired,
                                                "numberMisscheduled": 0,
                                                "observedGeneration": generation if observed else generation - 1}},
                  NS, subresource="status")


def _agent_pod(k, node: str) -> None:
    """The pod the DaemonSet controller would create on `node` (no controller, no kubelet here)."""
    ds = k.get(DAEMONSET, AGENT, NS)
    k.create(POD, {"apiVersion": "v1", "kind": "Pod",
                   "metadata": {"name": f"{AGENT}-{node}", "namespace": NS,
                                "labels": ds["spec"]["selector"]["matchLabels"]},
                   "spec": {"nodeName": node, "serviceAccountName": AGENT, "automountServiceAccountToken": False,
                            "containers": [{"name": "agent", "image": "example.org/agent:v1"}]}}, NS)


def test_wait_times_out_naming_lagging_nodes_then_succeeds(cli, admin, control_plane) -> None:
    """Only the nodes the DaemonSet is scheduled on count (issue 13.3): node-c (tainted, say) runs no agent and
    never advertises, and must not make --wait time out."""
    assert cli("--kubeconfig", admin, "expose", "eth0", "--name", "dataplane").exit_code == 0
    assert cli("--kubeconfig", admin, "install").exit_code == 0
    with control_plane.kube() as k:
        for n in ("node-a", "node-b", "node-c"):
            k.create(NODE, _node(n, {}))
        for n in ("node-a", "node-b"):
            _agent_pod(k, n)
        _set_node_status(k, "node-a", {"macvtap.network.kubevirt.io/dataplane": "100"})
        _set_ds_status(k, 2, 1)
    r = cli("--kubeconfig", admin, "install", "--wait", "--timeout", "2s")
    assert r.exit_code == ExitCode.TIMEOUT
    assert "node-b (not advertising macvtap.network.kubevirt.io/dataplane)" in r.stderr
    assert "1/2 pods ready" in r.stderr
    with control_plane.kube() as k:
        _set_node_status(k, "node-b", {"macvtap.network.kubevirt.io/dataplane": "100"})
        _set_ds_status(k, 2, 2)
    r = cli("--kubeconfig", admin, "install", "--wait", "--timeout", "10s")
    assert r.exit_code == 0, r.stderr
    assert "ready on every selected node" in r.stderr


def test_expose_unexpose_and_setup_wait_until_the_nodes_serve_the_change(cli, admin, control_plane) -> None:
    """--wait on expose/unexpose/setup: install --wait's rule for the one resource (the kubelet's node status and
    the DaemonSet controller's counts are written here by the test: neither runs on this control plane)."""
    res = "macvtap.network.kubevirt.io/second"
    r = cli("--kubeconfig", admin, "expose", "eth1", "--name", "second", "--wait", "--timeout", "2s")
    assert r.exit_code == ExitCode.PRECONDITION  # written, but nothing reads it: nothing to wait for
    assert r.stderr.strip().splitlines()[-1] == (
        "error: --wait: no device plugin reads ConfigMap macvtap/macvtap-deviceplugin-config, so no node will serve "
        "the change (install the agent: macvtapctl install)")
    assert cli("--kubeconfig", admin, "install").exit_code == 0
    with control_plane.kube() as k:
        k.create(NODE, _node("node-a", {}))
        _agent_pod(k, "node-a")
        _set_ds_status(k, 1, 1)
    r = cli("--kubeconfig", admin, "expose", "eth1", "--name", "second", "--wait", "--timeout", "2s")
    assert r.exit_code == ExitCode.TIMEOUT, r.stderr
    assert r.stderr.strip().splitlines()[-1] == (
        f"error: timed out after 2s waiting for the agent; lagging: node-a (not advertising {res})")
    with control_plane.kube() as k:
        _set_node_status(k, "node-a", {res: "100"})
    r = cli("--kubeconfig", admin, "expose", "eth1", "--name", "second", "--wait", "--timeout", "10s")
    assert r.exit_code == 0, r.stderr
    assert "configmap/macvtap-deviceplugin-config unchanged" in r.stderr
    assert r.stderr.strip().splitlines()[-1] == "every node serves the change"
    r = cli("--kubeconfig", admin, "unexpose", "second", "--wait", "--timeout", "2s")
    assert r.exit_code == ExitCode.TIMEOUT
    assert f"node-a (still advertising {res})" in r.stderr
    with control_plane.kube() as k:  # the kubelet after the plugin went: capacity kept, allocatable 0
        k.merge_patch(NODE, "node-a", {"status": {"allocatable": {res: "0"}}}, subresource="status")
    r = cli("--kubeconfig", admin, "expose", "eth1", "--name", "second", "--dry-run=server", "--wait")
    assert r.exit_code == 0 and "waiting" not in r.stderr  # a dry run changes nothing: nothing to wait for
    with control_plane.kube() as k:
        _set_node_status(k, "node-a", {"macvtap.network.kubevirt.io/third": "100"})
    r = cli("--kubeconfig", admin, "setup", "eth1", "--name", "third", "--wait", "--timeout", "10s")
    assert r.exit_code == 0, r.stderr
    assert r.stderr.strip().splitlines()[-1] == "every node serves the change"
    r = cli("--kubeconfig", admin, "unexpose", "second", "--wait", "--timeout", "1x")
    assert (r.exit_code, r.stderr.strip()) == (ExitCode.USAGE, 'error: invalid --timeout "1x": use a duration like '
                                                              '30s, 2m or 1m30s, or 0 for none')


def test_wait_with_macvtap_cni_points_to_restart(cli, admin, control_plane) -> None:
    """macvtap-cni reads the ConfigMap only at start: --wait says so, and waits with --restart."""
    assert cli("--kubeconfig", admin, "expose", "eth0", "--name", "dataplane").exit_code == 0
    with control_plane.kube() as k:
        k.create(DAEMONSET, {"apiVersion": "apps/v1", "kind": "DaemonSet",
                             "metadata": {"name": "macvtap-cni", "namespace": NS},
                             "spec": {"selector": {"matchLabels": {"name": "macvtap-cni"}}, "template": {
                                 "metadata": {"labels": {"name": "macvtap-cni"}}, "spec": {"containers": [{
                                     "name": "macvtap-cni", "image": "quay.io/kubevirt/macvtap-cni:v0.13.1",
                                     "command": ["/macvtap-deviceplugin"],
                                     "envFrom": [{"configMapRef": {"name": CM}}]}]}}}}, NS)
    try:
        r = cli("--kubeconfig", admin, "expose", "eth1", "--name", "second", "--wait")
        assert r.exit_code == ExitCode.PRECONDITION
        assert r.stderr.strip().splitlines()[-1] == (
            f"error: --wait: DaemonSet {NS}/macvtap-cni (macvtap-cni) reads ConfigMap {CM} only at start, so its "
            "nodes will not serve the change until it restarts: rerun with --restart to restart it and wait")
        with control_plane.kube() as k:  # the pod the DaemonSet controller made before that write
            ds = k.get(DAEMONSET, "macvtap-cni", NS)
            k.create(POD, {"apiVersion": "v1", "kind": "Pod", "metadata": {
                "name": "macvtap-cni-a", "namespace": NS, "labels": {"name": "macvtap-cni"},
                "ownerReferences": [{"apiVersion": "apps/v1", "kind": "DaemonSet", "name": "macvtap-cni",
                                     "uid": ds["metadata"]["uid"]}]},
                "spec": {"containers": [{"name": "c", "image": "quay.io/kubevirt/macvtap-cni:v0.13.1"}]}}, NS)
            k.merge_patch(POD, "macvtap-cni-a", {"status": {"startTime": "2020-01-01T00:00:00Z"}}, NS,
                          subresource="status")
        # Rerun as told: the ConfigMap is unchanged now, but the pod predates its last write: restarted.
        r = cli("--kubeconfig", admin, "expose", "eth1", "--name", "second", "--wait", "--restart", "--timeout", "2s")
        assert r.exit_code == ExitCode.TIMEOUT  # restarted; no controller here rolls it out
        assert "daemonset.apps/macvtap-cni restarted" in r.stderr
        assert f"timed out after 2s waiting for macvtap-cni; lagging: DaemonSet {NS}/macvtap-cni:" in r.stderr
        with control_plane.kube() as k:  # what the controller does with the restarted template: a new pod
            k.delete(POD, "macvtap-cni-a", NS, grace_period=0)
            k.create(POD, {"apiVersion": "v1", "kind": "Pod", "metadata": {
                "name": "macvtap-cni-b", "namespace": NS, "labels": {"name": "macvtap-cni"},
                "ownerReferences": [{"apiVersion": "apps/v1", "kind": "DaemonSet", "name": "macvtap-cni",
                                     "uid": ds["metadata"]["uid"]}]},
                "spec": {"containers": [{"name": "c", "image": "quay.io/kubevirt/macvtap-cni:v0.13.1"}]}}, NS)
            now = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(time.time() + 1))
            k.merge_patch(POD, "macvtap-cni-b", {"status": {"startTime": now}}, NS, subresource="status")
        r = cli("--kubeconfig", admin, "expose", "eth1", "--name", "second", "--restart")
        assert r.exit_code == 0 and "restarted" not in r.stderr, r.stderr  # its pod is newer: nothing to do twice
    finally:
        with control_plane.kube() as k:
            k.delete(DAEMONSET, "macvtap-cni", NS)
            for pod in ("macvtap-cni-a", "macvtap-cni-b"):
                if k.get_or_none(POD, pod, NS):
                    k.delete(POD, pod, NS, grace_period=0)


def test_wait_ignores_the_previous_rollouts_counts(cli, admin, control_plane) -> None:
    """`install --image new --wait` right after the patch: equal counts of the old rollout are not "ready"."""
    assert cli("--kubeconfig", admin, "expose", "eth0", "--name", "dataplane").exit_code == 0
    assert cli("--kubeconfig", admin, "install").exit_code == 0
    assert cli("--kubeconfig", admin, "install", "--image", "example.org/agent:v2").exit_code == 0
    with control_plane.kube() as k:
        k.create(NODE, _node("node-a", {}))
        _agent_pod(k, "node-a")
        _set_node_status(k, "node-a", {"macvtap.network.kubevirt.io/dataplane": "100"})
        _set_ds_status(k, 1, 1, observed=False)
    r = cli("--kubeconfig", admin, "install", "--image", "example.org/agent:v2", "--wait", "--timeout", "2s")
    assert r.exit_code == ExitCode.TIMEOUT
    assert "the new rollout not observed yet" in r.stderr
    with control_plane.kube() as k:
        _set_ds_status(k, 1, 1)
    r = cli("--kubeconfig", admin, "install", "--image", "example.org/agent:v2", "--wait", "--timeout", "10s")
    assert r.exit_code == 0, r.stderr


def test_status_chain(cli, admin, control_plane) -> None:
    r = cli("--kubeconfig", admin, "status", "-o", "json")
    assert r.exit_code == ExitCode.FINDINGS
    doc = json.loads(r.stdout)
    assert not doc["complete"] and any("no macvtap network binding" in p and p.endswith("(fix: macvtapctl enable)")
                                       for p in doc["problems"])
    assert cli("--kubeconfig", admin, "setup", "eth0", "--name", "dataplane").exit_code == 0
    assert cli("--kubeconfig", admin, "nad", "create", "ghost", "--resource", "ghost").exit_code == 0
    assert cli("--kubeconfig", admin, "install").exit_code == 0
    with control_plane.kube() as k:
        k.create(NODE, _node("node-a", {}))
        _set_node_status(k, "node-a", {"macvtap.network.kubevirt.io/dataplane": "100"})
        _set_ds_status(k, 1, 1)
        # What holds devices is pods: a VM's launcher pod and a plain pod asking for the resource alike (no kubelet
        # runs here, so the pods stay Pending on the node they are bound to, which still holds their devices).
        for name, units in (("virt-launcher-vmi-1-abcde", "1"), ("plain", "2")):
            k.create(POD, {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name, "namespace": "default"},
                           "spec": {"nodeName": "node-a", "containers": [{
                               "name": "c", "image": "example.org/x", "resources": {"limits": {
                                   "macvtap.network.kubevirt.io/dataplane": units}}}]}}, "default")
        k.create(POD, {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "elsewhere", "namespace": "default"},
                       "spec": {"containers": [{"name": "c", "image": "example.org/x", "resources": {"limits": {
                           "macvtap.network.kubevirt.io/dataplane": "1"}}}]}}, "default")  # not bound: holds none
    doc = json.loads(cli("--kubeconfig", admin, "status", "-o", "json").stdout)
    assert doc["problems"] == ["networkattachmentdefinition/default/ghost: resource 'ghost' has no allocatable device "
                               "on any schedulable node: it is not exposed in the device-plugin ConfigMap (fix: "
                               "macvtapctl expose LOWER_DEVICE --name ghost)"]
    assert doc["nodes"] == [{"node": "node-a", "resource": "dataplane", "capacity": "100", "allocatable": "100",
                             "inUse": 3}]
    assert doc["agents"] == [{"namespace": "macvtap", "name": AGENT, "kind": "macvtapctl", "desired": 1, "ready": 1,
                             "configMap": CM, "configSources": {}}]  # no agent pod runs here
    assert cli("--kubeconfig", admin, "nad", "delete", "ghost").exit_code == 0
    r = cli("--kubeconfig", admin, "status")
    with control_plane.kube() as k:
        for name in ("virt-launcher-vmi-1-abcde", "plain", "elsewhere"):
            k.delete(POD, name, "default", grace_period=0)  # no kubelet would confirm it
    assert r.exit_code == 0, r.stdout + r.stderr
    assert "the macvtap chain is complete" in r.stderr
    assert "node-a" in r.stdout and "dataplane" in r.stdout


def test_uninstall_removes_exactly_what_install_made(cli, admin, control_plane) -> None:
    assert cli("--kubeconfig", admin, "install").exit_code == 0
    with control_plane.kube() as k:
        k.create(NODE, _node("node-a", {}))
        _set_node_status(k, "node-a", {"macvtap.network.kubevirt.io/old": "0", "cpu": "2"})
        k.create(VIRTUAL_MACHINE, vm_manifest("uses", "--network", "n=x"), "default", strict=False)
    r = cli("--kubeconfig", admin, "uninstall")
    assert r.exit_code == ExitCode.PRECONDITION and "default/uses" in r.stderr
    with control_plane.kube() as k:
        # No DaemonSet controller runs here: say what it would once it has observed the cleanup rollout that
        # `--purge-node-resources` starts (no node runs the agent, so nothing is left to wait for).
        k.merge_patch(DAEMONSET, AGENT, {"status": {"desiredNumberScheduled": 0, "numberReady": 0,
                                                    "updatedNumberScheduled": 0, "currentNumberScheduled": 0,
                                                    "numberMisscheduled": 0, "observedGeneration": 1000}},
                      NS, subresource="status")
    r = cli("--kubeconfig", admin, "uninstall", "--force", "--purge-node-resources")
    assert r.exit_code == 0, r.stderr
    assert "daemonset.apps/macvtapctl-agent cleaned 0 node(s)" in r.stderr
    assert "finished cleaning up" not in r.stderr
    after = resource_versions(control_plane, OBJECTS)
    assert after[f"daemonsets/{NS}/{AGENT}"] is None and after[f"serviceaccounts/{NS}/{AGENT}"] is None
    assert after[f"roles/{NS}/{AGENT}"] is None and after[f"rolebindings/{NS}/{AGENT}"] is None
    assert after[f"clusterroles/None/{AGENT}"] is None and after[f"clusterrolebindings/None/{AGENT}"] is None
    assert after[f"configmaps/{NS}/{CM}"] is not None and after[f"namespaces/None/{NS}"] is not None
    with control_plane.kube() as k:
        st = k.get(NODE, "node-a")["status"]
    assert "macvtap.network.kubevirt.io/old" not in st["capacity"] and st["capacity"]["cpu"] == "2"
    assert cli("--kubeconfig", admin, "uninstall", "--force").stderr == ""  # nothing left to delete


def test_via_cnao(cli, admin, control_plane) -> None:
    with control_plane.kube() as k:
        if k.get_or_none(NETWORK_ADDONS_CONFIG, "cluster"):
            k.delete(NETWORK_ADDONS_CONFIG, "cluster")
    try:
        r = cli("--kubeconfig", admin, "install", "--via", "cnao", "--device-plugin-config", "my-macvtap")
        assert r.exit_code == 0, r.stderr
        with control_plane.kube() as k:
            nac = k.get(NETWORK_ADDONS_CONFIG, "cluster")
            assert nac["spec"]["macvtap"] == {"devicePluginConfig": "my-macvtap"}
            assert k.get_or_none(DAEMONSET, AGENT, NS) is None
        r = cli("--kubeconfig", admin, "install", "--via", "cnao", "--device-plugin-config", "my-macvtap")
        assert r.stderr.rstrip().endswith("unchanged")
    finally:
        with control_plane.kube() as k:
            k.delete(NETWORK_ADDONS_CONFIG, "cluster")


def test_kind_config(cli) -> None:
    doc = yaml.safe_load(cli("kind-config", "--nodes", "3").stdout)
    assert [n["role"] for n in doc["nodes"]] == ["control-plane", "worker", "worker"]
    assert all(n["extraMounts"] == [{"hostPath": "/dev", "containerPath": "/dev", "propagation": "HostToContainer"}]
               for n in doc["nodes"])
    assert cli("kind-config", "--nodes", "0").exit_code == ExitCode.USAGE


def test_server_dry_run_into_a_namespace_that_does_not_exist(cli, admin, control_plane) -> None:
    r = cli("--kubeconfig", admin, "install", "--dry-run=server", "-n", "not-there-yet")
    assert r.exit_code == 0, r.stderr
    assert "validated in namespace default" in r.stderr
    assert "daemonset.apps/macvtapctl-agent created (server dry run)" in r.stderr
    r = cli("--kubeconfig", admin, "expose", "eth0", "--dp-namespace", "not-there-yet", "--dry-run=server")
    assert r.exit_code == 0, r.stderr
    assert "was not validated by the server" in r.stderr
    with control_plane.kube() as k:
        assert k.get_or_none(NAMESPACE, "not-there-yet") is None
        from macvtapctl.errors import NotFoundError

        with pytest.raises(NotFoundError, match='namespace "not-there-yet" not found'):
            k.create(CONFIGMAP, {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "x"}}, "not-there-yet")


def test_status_reports_odd_configmaps_as_findings(cli, admin, control_plane) -> None:
    """Issue 13.14: two ConfigMaps (or CNAO's own) are findings of `status` (exit 8), not usage errors; refused
    entries are problems and upstream-accepted quirks are warnings."""
    with control_plane.kube() as k:
        for ns in ("macvtap", "other"):
            if k.get_or_none(NAMESPACE, ns) is None:
                k.create(NAMESPACE, {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns}})
        for ns in ("macvtap", "other"):
            k.create(CONFIGMAP, {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": CM, "namespace": ns},
                                 "data": {"DP_MACVTAP_CONF": "[]"}}, ns)
    r = cli("--kubeconfig", admin, "status", "-o", "json")
    assert r.exit_code == ExitCode.FINDINGS, r.stderr
    assert any("2 device-plugin ConfigMaps: macvtap/macvtap-deviceplugin-config (read by no device plugin); other/"
               in w for w in json.loads(r.stdout)["warnings"])
    with control_plane.kube() as k:
        k.delete(CONFIGMAP, CM, "other")
        k.merge_patch(CONFIGMAP, CM, {"data": {"DP_MACVTAP_CONF": json.dumps(
            [{"name": "legacy", "master": "eth1"}, {"Name": "dp", "lowerDevice": "eth0", "capacity": 0}])}}, NS)
    r = cli("--kubeconfig", admin, "status", "-o", "json")
    assert r.exit_code == ExitCode.FINDINGS
    doc = json.loads(r.stdout)
    assert any("entry 'legacy': key 'master' is not read by the device plugin: write 'lowerDevice'" in p
               for p in doc["problems"])
    assert [w.split(":")[0] for w in doc["deviceplugin"]["warnings"]] == ["entry 'dp'", "entry 'dp'"]


def test_the_unpublished_default_image_is_said_up_front_and_a_pull_failure_is_named(cli, admin,
                                                                                    control_plane) -> None:
    r = cli("--kubeconfig", admin, "install", "--dry-run=client")
    assert "quay.io/macvtapctl/agent:v0.1.0 is not published in a registry yet" in r.stderr
    assert r.stderr.index("not published") < r.stderr.index("daemonset.apps/macvtapctl-agent")  # before any write
    r = cli("--kubeconfig", admin, "install", "--image", "registry.example/macvtapctl/agent:v1")
    assert r.exit_code == 0 and "not published" not in r.stderr
    with control_plane.kube() as k:
        k.create(NODE, _node("node-a", {}))
        _agent_pod(k, "node-a")
        # What the kubelet reports when the registry does not have the image (no kubelet here).
        k.merge_patch(POD, f"{AGENT}-node-a", {"status": {"phase": "Pending", "containerStatuses": [{
            "name": "agent", "image": "registry.example/macvtapctl/agent:v1", "imageID": "", "ready": False,
            "restartCount": 0, "state": {"waiting": {"reason": "ImagePullBackOff"}}}]}}, NS, subresource="status")
        _set_ds_status(k, 1, 0)
    want = f"pod {AGENT}-node-a on node node-a cannot pull registry.example/macvtapctl/agent:v1 (ImagePullBackOff"
    r = cli("--kubeconfig", admin, "status")
    assert r.exit_code == ExitCode.FINDINGS and want in r.stderr
    r = cli("--kubeconfig", admin, "install", "--image", "registry.example/macvtapctl/agent:v1", "--wait",
            "--timeout", "2s")
    assert r.exit_code == ExitCode.TIMEOUT and want in r.stderr


def test_wait_follows_watches_and_reports_nodes_as_they_become_ready(admin, control_plane, monkeypatch) -> None:
    """`install --wait` on 30 nodes that become ready over ~4 s: it returns once the last one advertises, having
    listed each kind once (then watched), and says how many nodes advertise as they do."""
    import threading
    import time

    from macvtapctl.kube.client import Kube
    from tests.conftest import run_cli

    assert run_cli("--kubeconfig", admin, "expose", "eth0", "--name", "dataplane").exit_code == 0
    assert run_cli("--kubeconfig", admin, "install").exit_code == 0
    names = [f"wnode-{i:02d}" for i in range(30)]
    with control_plane.kube() as k:
        for n in names:
            k.create(NODE, _node(n, {}))
            _agent_pod(k, n)
        _set_ds_status(k, 30, 0)
    sent: list[tuple[str, str]] = []
    real = Kube._send
    monkeypatch.setattr(Kube, "_send", lambda self, m, p, *a, **kw: sent.append((m, p)) or real(self, m, p, *a, **kw))
    finished: list[float] = []

    def nodes_come_up() -> None:
        with control_plane.kube() as k:
            for i, n in enumerate(names):
                time.sleep(0.12)
                _set_node_status(k, n, {"macvtap.network.kubevirt.io/dataplane": "100"})
                if i == len(names) - 1:
                    finished.append(time.monotonic())  # the change that makes it ready
                _set_ds_status(k, 30, i + 1)

    try:
        threading.Thread(target=nodes_come_up, daemon=True).start()
        r = run_cli("--kubeconfig", admin, "install", "--wait", "--timeout", "60s")
        assert r.exit_code == 0, r.stderr
        assert finished  # it returned after the change that made it ready, and (below) not by polling:
        assert sent.count(("GET", "/api/v1/nodes")) == 1  # one LIST; every change after it came from the watch
        assert sent.count(("GET", f"/api/v1/namespaces/{NS}/pods")) == 1
        progress = [int(line.split("; ")[1].split("/")[0]) for line in r.stderr.splitlines()
                    if line.startswith("waiting: ")]
        assert progress == sorted(progress) and progress[-1] == 30 and len(set(progress)) >= 3, progress
    finally:
        with control_plane.kube() as k:
            for n in names:
                k.delete(POD, f"{AGENT}-{n}", NS)
                k.delete(NODE, n)


def test_install_is_refused_beside_the_agent_in_another_namespace(cli, admin, control_plane) -> None:
    """docs/install.md: a plain install refuses (exit 3, nothing written) while another device plugin runs — the
    agent in another namespace among them: two plugins on one kubelet fight over the same resources."""
    assert cli("--kubeconfig", admin, "install").exit_code == 0
    before = resource_versions(control_plane, OBJECTS)
    r = cli("--kubeconfig", admin, "install", "-n", "elsewhere")
    assert r.exit_code == ExitCode.PRECONDITION, r.stderr
    errors = [line for line in r.stderr.splitlines() if line.startswith("error:")]
    assert errors == [f"error: the macvtapctl agent already runs as DaemonSet {NS}/{AGENT}: pass --namespace {NS} "
                      "to update it"], r.stderr
    with control_plane.kube() as k:
        assert k.get_or_none(NAMESPACE, "elsewhere") is None
    assert resource_versions(control_plane, OBJECTS) == before


def test_uninstall_purge_deletes_the_configmap_and_the_namespace(cli, admin, control_plane) -> None:
    """In a namespace of its own: no namespace controller runs in this control plane, so a deleted namespace stays
    Terminating for good, and every later test needs `macvtap`."""
    ns = "purge-me"
    base = ["--kubeconfig", admin, "-n", ns]
    assert cli(*base, "install").exit_code == 0
    assert cli("--kubeconfig", admin, "expose", "eth0", "--dp-namespace", ns).exit_code == 0
    with control_plane.kube() as k:  # no DaemonSet controller here: the cleanup rollout as it would report it
        k.merge_patch(DAEMONSET, AGENT, {"status": {"desiredNumberScheduled": 0, "numberReady": 0,
                                                    "updatedNumberScheduled": 0, "currentNumberScheduled": 0,
                                                    "numberMisscheduled": 0, "observedGeneration": 1000}},
                      ns, subresource="status")
    r = cli(*base, "uninstall", "--purge")
    assert r.exit_code == 0, r.stderr
    with control_plane.kube() as k:
        assert k.get_or_none(CONFIGMAP, CM, ns) is None and k.get_or_none(DAEMONSET, AGENT, ns) is None
        gone = k.get_or_none(NAMESPACE, ns)
    assert gone is None or gone["metadata"].get("deletionTimestamp"), gone  # deleted (its finalizers may still run)
    r = cli(*base, "uninstall", "--restore-upstream", "--purge")
    assert r.exit_code == ExitCode.USAGE and "--purge" in r.stderr, r.stderr
