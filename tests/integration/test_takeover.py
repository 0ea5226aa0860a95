"""install beside a running macvtap-cni: refused without --take-over, nothing written; --take-over's plan (server
dry run) and a take-over cut short, against the real API server. The switch itself (a DaemonSet controller, a
kubelet and pods that keep their links) runs on the real node: tests/compat/test_switch_on_node.py."""

from __future__ import annotations

import copy
import json
from typing import Any

import pytest

from macvtapctl.errors import ExitCode
from macvtapctl.kube.resources import CONFIGMAP, DAEMONSET, NAMESPACE, SERVICE_ACCOUNT
from tests.conftest import resource_versions
from tests.unit.rules.test_device_plugins import upstream_ds

UP_NS = "kubevirt-macvtap"
CM = "macvtap-deviceplugin-config"
AGENT = "macvtapctl-agent"
RECORD = "macvtapctl-takeover"
CONF = '[{"name": "dataplane", "lowerDevice": "e2elan0", "mode": "bridge", "capacity": 10}]'
WATCHED = [(CONFIGMAP, CM, "macvtap"), (DAEMONSET, AGENT, "macvtap"),
           (CONFIGMAP, CM, UP_NS), (DAEMONSET, "macvtap-cni", UP_NS), (DAEMONSET, AGENT, UP_NS),
           (SERVICE_ACCOUNT, AGENT, UP_NS), (CONFIGMAP, RECORD, UP_NS)]


def _create(k: Any, res: Any, obj: dict[str, Any]) -> None:
    body = copy.deepcopy(obj)
    for key in ("uid", "resourceVersion", "generation", "managedFields"):
        body["metadata"].pop(key, None)
    body.pop("status", None)
    k.create(res, body, body["metadata"].get("namespace"))


@pytest.fixture
def upstream(control_plane) -> Any:
    """upstream's DaemonSet in its own namespace, reading its ConfigMap (as its manifest deploys it)."""
    def wipe() -> None:  # objects, not namespaces: no namespace controller runs here to finalize a deletion
        with control_plane.kube() as k:
            for res, name, ns in WATCHED:
                if res is not NAMESPACE and k.get_or_none(res, name, ns):
                    k.delete(res, name, ns)
    wipe()
    with control_plane.kube() as k:
        if k.get_or_none(NAMESPACE, UP_NS) is None:
            k.create(NAMESPACE, {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": UP_NS}})
        k.create(CONFIGMAP, {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": CM, "namespace": UP_NS},
                             "data": {"DP_MACVTAP_CONF": CONF}}, UP_NS)
        ds = upstream_ds(UP_NS)
        ds["metadata"]["annotations"] = {"team": "net"}
        _create(k, DAEMONSET, ds)
    yield
    wipe()


def test_install_beside_macvtap_cni_is_refused_and_writes_nothing(cli, admin, control_plane, upstream) -> None:
    before = resource_versions(control_plane, WATCHED)
    for argv in (["install", "--image", "registry.example/agent:v1"],
                 ["install", "--image", "registry.example/agent:v1", "--dry-run=server"],
                 ["install", "--via", "cnao"]):
        r = cli("--kubeconfig", admin, *argv)
        assert r.exit_code == ExitCode.PRECONDITION, r.stderr
        assert r.stderr.strip().splitlines() == [
            "error: DaemonSet kubevirt-macvtap/macvtap-cni (macvtap-cni, reads ConfigMap kubevirt-macvtap/"
            "macvtap-deviceplugin-config) already serves macvtap: two device plugins on one kubelet fight over the "
            "same resources; pass --take-over to switch its nodes to the agent (docs/install.md)"], argv
        assert "Traceback" not in r.stderr
    assert resource_versions(control_plane, WATCHED) == before


def test_take_over_flags_are_checked_before_anything_is_sent(cli, admin, control_plane, upstream) -> None:
    before = resource_versions(control_plane, WATCHED)
    r = cli("--kubeconfig", admin, "-n", "macvtap", "install", "--take-over", "--image", "r.example/a:v1")
    assert r.exit_code == ExitCode.USAGE
    assert r.stderr.strip() == ('error: invalid --namespace "macvtap": --take-over installs the agent beside '
                                "DaemonSet kubevirt-macvtap/macvtap-cni, in namespace kubevirt-macvtap (a pod can "
                                "only mount a ConfigMap of its own namespace)")
    for argv, line in ((["install", "--take-over", "--via", "cnao"],
                        "error: --take-over switches to the agent: it cannot be combined with --via cnao"),
                       (["install", "--take-over", "--dry-run=client"],
                        "error: --take-over reads what serves macvtap today: use --dry-run=server"),
                       (["uninstall", "--restore-upstream", "--purge"],
                        "error: --restore-upstream keeps the ConfigMap and namespace macvtap-cni reads: it cannot "
                        "be combined with --purge")):
        r = cli("--kubeconfig", admin, *argv)
        assert (r.exit_code, r.stderr.strip()) == (ExitCode.USAGE, line)
    r = cli("--kubeconfig", admin, "uninstall", "--restore-upstream")
    assert r.exit_code == ExitCode.PRECONDITION
    assert "no take-over record (ConfigMap macvtapctl-takeover, written by install --take-over) found" in r.stderr
    assert resource_versions(control_plane, WATCHED) == before


def test_take_over_plan_is_validated_by_the_server_and_writes_nothing(cli, admin, control_plane, upstream) -> None:
    before = resource_versions(control_plane, WATCHED)
    r = cli("--kubeconfig", admin, "install", "--take-over", "--image", "r.example/a:v1", "--dry-run=server")
    assert r.exit_code == 0, r.stderr
    lines = [ln for ln in r.stderr.splitlines() if not ln.startswith("warning:")]
    assert lines == ["taking over from DaemonSet kubevirt-macvtap/macvtap-cni (macvtap-cni, reads ConfigMap "
                     "kubevirt-macvtap/macvtap-deviceplugin-config)",
                     "configmap/macvtapctl-takeover created (server dry run)",
                     "serviceaccount/macvtapctl-agent created (server dry run)",
                     "role.rbac.authorization.k8s.io/macvtapctl-agent created (server dry run)",
                     "rolebinding.rbac.authorization.k8s.io/macvtapctl-agent created (server dry run)",
                     "clusterrole.rbac.authorization.k8s.io/macvtapctl-agent created (server dry run)",
                     "clusterrolebinding.rbac.authorization.k8s.io/macvtapctl-agent created (server dry run)",
                     "daemonset.apps/macvtapctl-agent created (server dry run)",
                     "daemonset.apps/macvtap-cni deleted (server dry run)"]
    assert resource_versions(control_plane, WATCHED) == before


def test_a_take_over_cut_short_leaves_macvtap_cni_serving_and_can_be_given_back(cli, admin, control_plane,
                                                                             upstream) -> None:
    """No DaemonSet controller runs on this control plane, so the agent never becomes ready: the take-over times
    out with upstream untouched, the user's ConfigMap unchanged, the agent pointed at it, and the record kept;
    giving back then times out waiting for upstream's rollout likewise, and leaves the agent (nothing removed
    while nothing else is ready)."""
    with control_plane.kube() as k:
        cm_before = k.get(CONFIGMAP, CM, UP_NS)
        up_before = k.get(DAEMONSET, "macvtap-cni", UP_NS)
    r = cli("--kubeconfig", admin, "install", "--take-over", "--image", "r.example/a:v1", "--timeout", "2s")
    assert r.exit_code == ExitCode.TIMEOUT, r.stderr
    assert r.stderr.strip().splitlines()[-1].endswith(
        "DaemonSet kubevirt-macvtap/macvtap-cni was left running: run install --take-over again, or go back with "
        "uninstall --restore-upstream")
    with control_plane.kube() as k:
        assert k.get(CONFIGMAP, CM, UP_NS)["metadata"]["resourceVersion"] == cm_before["metadata"]["resourceVersion"]
        assert k.get(DAEMONSET, "macvtap-cni", UP_NS)["metadata"]["resourceVersion"] == \
            up_before["metadata"]["resourceVersion"]
        assert k.get_or_none(CONFIGMAP, CM, "macvtap") is None  # no second ConfigMap
        assert k.get_or_none(DAEMONSET, AGENT, "macvtap") is None
        agent = k.get(DAEMONSET, AGENT, UP_NS)
        vols = agent["spec"]["template"]["spec"]["volumes"]
        assert [v["configMap"]["name"] for v in vols if v["name"] == "config"] == [CM]
        record = k.get(CONFIGMAP, RECORD, UP_NS)
        saved = json.loads(record["data"]["daemonset.json"])
        assert saved["spec"]["template"] == up_before["spec"]["template"]
        assert saved["metadata"]["annotations"] == {"team": "net"}
    # A second attempt keeps the first record (it holds what was there first) and changes nothing else.
    r = cli("--kubeconfig", admin, "install", "--take-over", "--image", "r.example/a:v1", "--timeout", "1s")
    assert r.exit_code == ExitCode.TIMEOUT
    assert "configmap/macvtapctl-takeover unchanged" in r.stderr
    assert "daemonset.apps/macvtapctl-agent unchanged" in r.stderr
    r = cli("--kubeconfig", admin, "uninstall", "--restore-upstream", "--timeout", "2s")
    assert r.exit_code == ExitCode.TIMEOUT, r.stderr
    assert "daemonset.apps/macvtap-cni unchanged" in r.stderr  # it was never removed
    assert r.stderr.strip().splitlines()[-1] == (
        "error: macvtap-cni is not ready (0/0 pods ready); the agent was left running: run uninstall "
        "--restore-upstream again")
    with control_plane.kube() as k:
        assert k.get_or_none(DAEMONSET, AGENT, UP_NS) is not None
        assert k.get_or_none(CONFIGMAP, RECORD, UP_NS) is not None


def test_a_give_back_waits_for_the_kubelets_to_serve_from_macvtap_cni_and_names_the_nodes(cli, admin, control_plane,
                                                                                          upstream) -> None:
    """Issue 37 item 5: rolled out is not registered. macvtap-cni rolled out (its status written here: no DaemonSet
    controller) and an agent pod running on node-a whose report cannot be read (no kubelet behind the pod proxy):
    the give-back does not roll the agent to its uninstall mode; it times out naming node-a and leaves the agent.
    The report saying the kubelet is connected is tests/unit/test_switch_waits.py's, and the node's own, make
    compat's (tests/compat/test_switch_on_node.py)."""
    from macvtapctl.kube.resources import POD

    r = cli("--kubeconfig", admin, "install", "--take-over", "--image", "r.example/a:v1", "--timeout", "1s")
    assert r.exit_code == ExitCode.TIMEOUT, r.stderr  # cut short: the agent's DaemonSet and the record are written
    with control_plane.kube() as k:
        up = k.get(DAEMONSET, "macvtap-cni", UP_NS)
        k.merge_patch(DAEMONSET, "macvtap-cni", {"status": {
            "observedGeneration": up["metadata"]["generation"], "desiredNumberScheduled": 1, "currentNumberScheduled": 1,
            "numberReady": 1, "updatedNumberScheduled": 1, "numberMisscheduled": 0}}, UP_NS, subresource="status")
        agent = k.get(DAEMONSET, AGENT, UP_NS)
        for name, labels, owner in (("agent-node-a", {"app.kubernetes.io/name": AGENT}, agent),
                                    ("macvtap-cni-node-a", {"name": "macvtap-cni"}, up)):
            k.create(POD, {"apiVersion": "v1", "kind": "Pod", "metadata": {
                "name": name, "namespace": UP_NS, "labels": labels, "ownerReferences": [
                    {"apiVersion": "apps/v1", "kind": "DaemonSet", "name": owner["metadata"]["name"],
                     "uid": owner["metadata"]["uid"]}]},
                "spec": {"nodeName": "node-a", "serviceAccountName": AGENT, "automountServiceAccountToken": False,
                         "containers": [{"name": "c", "image": "r.example/a:v1"}]}}, UP_NS)
            k.merge_patch(POD, name, {"status": {"phase": "Running"}}, UP_NS, subresource="status")
    try:
        r = cli("--kubeconfig", admin, "uninstall", "--restore-upstream", "--timeout", "4s")
        assert r.exit_code == ExitCode.TIMEOUT, r.stderr
        assert "daemonset.apps/macvtap-cni unchanged" in r.stderr
        assert f"DaemonSet {UP_NS}/macvtap-cni is ready on every node" in r.stderr
        assert "waiting for macvtap-cni: registered with the kubelet on 0/1 node(s), not yet on node-a (its agent did " \
               "not answer: " in r.stderr, r.stderr
        last = r.stderr.strip().splitlines()[-1]
        assert last.startswith("error: macvtap-cni is rolled out but not registered with the kubelet on node-a (its "
                               "agent did not answer: "), last
        assert last.endswith("; the agent was left running: run uninstall --restore-upstream again"), last
        with control_plane.kube() as k:
            agent = k.get(DAEMONSET, AGENT, UP_NS)
            assert all("--uninstall" not in (c.get("args") or []) for c in agent["spec"]["template"]["spec"]
                       ["containers"])  # not rolled to its uninstall mode
            assert k.get_or_none(CONFIGMAP, RECORD, UP_NS) is not None
    finally:
        with control_plane.kube() as k:
            for name in ("agent-node-a", "macvtap-cni-node-a"):
                if k.get_or_none(POD, name, UP_NS):
                    k.delete(POD, name, UP_NS, grace_period=0)  # no kubelet would confirm a graceful one
        with control_plane.kube() as k:
            assert k.get_or_none(POD, "agent-node-a", UP_NS) is None


def test_a_cnao_owned_configmap_is_not_taken_over(cli, admin, control_plane, upstream) -> None:
    """Turning CNAO's macvtap off deletes the ConfigMap it owns: refused, with the way to keep the entries."""
    with control_plane.kube() as k:
        cm = k.get(CONFIGMAP, CM, UP_NS)
        k.merge_patch(CONFIGMAP, CM, {"metadata": {"ownerReferences": [
            {"apiVersion": "networkaddonsoperator.network.kubevirt.io/v1", "kind": "NetworkAddonsConfig",
             "name": "cluster", "uid": "6b1f0b1e-0000-4000-8000-000000000001"}]}}, UP_NS)
        assert cm
    before = resource_versions(control_plane, WATCHED)
    r = cli("--kubeconfig", admin, "install", "--take-over", "--image", "r.example/a:v1")
    assert r.exit_code == ExitCode.PRECONDITION
    assert r.stderr.strip().startswith("error: ConfigMap kubevirt-macvtap/macvtap-deviceplugin-config is CNAO's own: "
                                       "turning macvtap off in CNAO deletes it.")
    assert resource_versions(control_plane, WATCHED) == before


def test_status_names_both_plugins_and_what_each_reads(cli, admin, control_plane, upstream) -> None:
    """A second ConfigMap (an older plain install's) beside upstream's: status names both, never "missing"."""
    with control_plane.kube() as k:
        if k.get_or_none(NAMESPACE, "macvtap") is None:
            k.create(NAMESPACE, {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "macvtap"}})
        k.create(CONFIGMAP, {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": CM, "namespace": "macvtap"},
                             "data": {"DP_MACVTAP_CONF": "[]"}}, "macvtap")
    r = cli("--kubeconfig", admin, "status")
    assert r.exit_code == ExitCode.FINDINGS
    # The one macvtap-cni reads is in effect; both are named, and doctor's dp-config-several judges them.
    assert "Device plugin:   kubevirt-macvtap/macvtap-deviceplugin-config: " in r.stdout
    assert ("2 ConfigMaps: kubevirt-macvtap/macvtap-deviceplugin-config, macvtap/macvtap-deviceplugin-config"
            in r.stdout)
    assert "2 device-plugin ConfigMaps" in r.stderr  # doctor's dp-config-several, a warning: one is read by none
    assert "kubevirt-macvtap/macvtap-cni (macvtap-cni) 0/0 ready, reads macvtap-deviceplugin-config" in r.stdout
    assert "missing" not in r.stdout
    doc = json.loads(cli("--kubeconfig", admin, "status", "-o", "json").stdout)
    assert [c["namespace"] for c in doc["deviceplugin"]["configMaps"]] == ["kubevirt-macvtap", "macvtap"]
    assert doc["agents"][0]["configMap"] == CM


def test_take_over_from_cnao_turns_its_macvtap_off_and_records_its_spec(cli, admin, control_plane) -> None:
    """CNAO's macvtap-cni (owned by the NetworkAddonsConfig, reading the user's ConfigMap CNAO points at): the plan
    turns CNAO's macvtap off instead of deleting the DaemonSet the operator would recreate; a take-over cut short
    (no DaemonSet controller here) records CNAO's spec.macvtap for the give-back and has not touched CNAO yet."""
    from macvtapctl.kube.resources import NETWORK_ADDONS_CONFIG

    ns, custom = "cluster-network-addons", "my-macvtap"
    with control_plane.kube() as k:
        if k.get_or_none(NETWORK_ADDONS_CONFIG, "cluster"):
            k.delete(NETWORK_ADDONS_CONFIG, "cluster")
        nac = k.create(NETWORK_ADDONS_CONFIG, {
            "apiVersion": "networkaddonsoperator.network.kubevirt.io/v1", "kind": "NetworkAddonsConfig",
            "metadata": {"name": "cluster"}, "spec": {"macvtap": {"devicePluginConfig": custom}}})
        if k.get_or_none(NAMESPACE, ns) is None:
            k.create(NAMESPACE, {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns}})
        k.create(CONFIGMAP, {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": custom, "namespace": ns},
                             "data": {"DP_MACVTAP_CONF": CONF}}, ns)
        ds = upstream_ds(ns, custom)
        ds["metadata"]["ownerReferences"] = [{"apiVersion": "networkaddonsoperator.network.kubevirt.io/v1",
                                              "kind": "NetworkAddonsConfig", "name": "cluster",
                                              "uid": nac["metadata"]["uid"]}]
        _create(k, DAEMONSET, ds)
    try:
        r = cli("--kubeconfig", admin, "install", "--image", "r.example/a:v1")
        assert r.exit_code == ExitCode.PRECONDITION and "deployed by CNAO's NetworkAddonsConfig cluster" in r.stderr
        r = cli("--kubeconfig", admin, "install", "--take-over", "--image", "r.example/a:v1", "--dry-run=server")
        assert r.exit_code == 0, r.stderr
        assert r.stderr.splitlines()[0] == (
            f"taking over from DaemonSet {ns}/macvtap-cni (macvtap-cni, deployed by CNAO's NetworkAddonsConfig "
            f"cluster, reads ConfigMap {ns}/{custom})")
        assert ("networkaddonsconfig.networkaddonsoperator.network.kubevirt.io/cluster configured (macvtap off) "
                "(server dry run)") in r.stderr
        r = cli("--kubeconfig", admin, "install", "--take-over", "--image", "r.example/a:v1", "--timeout", "1s")
        assert r.exit_code == ExitCode.TIMEOUT, r.stderr
        with control_plane.kube() as k:
            record = k.get(CONFIGMAP, RECORD, ns)
            assert json.loads(record["data"]["networkaddonsconfig.json"]) == {
                "name": "cluster", "spec": {"macvtap": {"devicePluginConfig": custom}}}
            assert "daemonset.json" not in record["data"] and record["data"]["configMap"] == custom
            assert k.get(NETWORK_ADDONS_CONFIG, "cluster")["spec"]["macvtap"] == {"devicePluginConfig": custom}
            agent = k.get(DAEMONSET, AGENT, ns)
            assert [v["configMap"]["name"] for v in agent["spec"]["template"]["spec"]["volumes"]
                    if v["name"] == "config"] == [custom]
        # CNAO told to deploy macvtap-cni, before its DaemonSet exists: refused as well.
        with control_plane.kube() as k:
            k.delete(DAEMONSET, "macvtap-cni", ns)
        r = cli("--kubeconfig", admin, "install", "--image", "r.example/a:v1", "-n", ns)
        assert r.exit_code == ExitCode.PRECONDITION
        assert r.stderr.strip() == ("error: NetworkAddonsConfig cluster has spec.macvtap: CNAO deploys macvtap-cni, "
                                    "which would compete with the agent; once it runs, pass --take-over to switch "
                                    "its nodes to the agent (docs/install.md)")
    finally:
        with control_plane.kube() as k:
            for res, name in ((DAEMONSET, "macvtap-cni"), (DAEMONSET, AGENT), (SERVICE_ACCOUNT, AGENT),
                              (CONFIGMAP, RECORD), (CONFIGMAP, custom)):
                if k.get_or_none(res, name, ns):
                    k.delete(res, name, ns)
            k.delete(NETWORK_ADDONS_CONFIG, "cluster")


def test_a_plain_install_after_a_take_over_keeps_the_agent_on_macvtap_cnis_configmap(cli, admin, control_plane,
                                                                                    upstream) -> None:
    """After a take-over of a ConfigMap with another name, `install -n NS` (an upgrade, say) must not point the
    agent at a new `[]` ConfigMap of the default name."""
    theirs = "dataplane-config"
    with control_plane.kube() as k:
        k.create(CONFIGMAP, {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": theirs, "namespace": UP_NS},
                             "data": {"DP_MACVTAP_CONF": CONF}}, UP_NS)
        k.delete(DAEMONSET, "macvtap-cni", UP_NS)
        _create(k, DAEMONSET, upstream_ds(UP_NS, theirs))
    try:
        r = cli("--kubeconfig", admin, "install", "--take-over", "--image", "r.example/a:v1", "--timeout", "1s")
        assert r.exit_code == ExitCode.TIMEOUT, r.stderr  # no DaemonSet controller here: cut short
        with control_plane.kube() as k:
            k.delete(DAEMONSET, "macvtap-cni", UP_NS)  # as the finished take-over would have
        before = resource_versions(control_plane, [(NAMESPACE, UP_NS, None)])
        r = cli("--kubeconfig", admin, "-n", UP_NS, "install", "--image", "r.example/a:v2")
        assert r.exit_code == 0, r.stderr
        assert f"configmap/{theirs} unchanged" in r.stderr and f"configmap/{CM}" not in r.stderr, r.stderr
        # upstream's namespace keeps its owner's labels: install applies none of the agent's namespace onto it
        assert "namespace/" not in r.stderr and resource_versions(control_plane, [(NAMESPACE, UP_NS, None)]) == before
        with control_plane.kube() as k:
            vols = k.get(DAEMONSET, AGENT, UP_NS)["spec"]["template"]["spec"]["volumes"]
            assert [v["configMap"]["name"] for v in vols if v["name"] == "config"] == [theirs]
            assert k.get(CONFIGMAP, theirs, UP_NS)["data"]["DP_MACVTAP_CONF"] == CONF
    finally:
        with control_plane.kube() as k:
            if k.get_or_none(CONFIGMAP, theirs, UP_NS):
                k.delete(CONFIGMAP, theirs, UP_NS)
