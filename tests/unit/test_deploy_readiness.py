"""`install --wait`'s rule without a cluster: the DaemonSet's own rollout, on the nodes it is scheduled on."""

from __future__ import annotations

import json
from typing import Any

from macvtapctl import identity
from macvtapctl.manifests import agent as agentm
from macvtapctl.ops.install import wanted_resources
from macvtapctl.rules.waits import readiness_of

LABELS = agentm.daemonset(agentm.InstallOptions())["spec"]["selector"]["matchLabels"]


class FakeKube:
    def __init__(self, ds_status: dict[str, Any], generation: int, pods: list[str], nodes: dict[str, dict[str, str]],
                 conf: list[dict[str, Any]]) -> None:
        self.objects = {
            "daemonsets": {"metadata": {"name": identity.AGENT_NAME, "generation": generation},
                           "spec": {"selector": {"matchLabels": LABELS}}, "status": ds_status},
            "configmaps": {"metadata": {"name": "macvtap-deviceplugin-config", "namespace": "macvtap"},
                           "data": {"DP_MACVTAP_CONF": json.dumps(conf)}}}
        self.pods = [{"metadata": {"name": f"agent-{n}", "labels": LABELS}, "spec": {"nodeName": n}} for n in pods]
        self.nodes = [{"metadata": {"name": n}, "status": {"allocatable": alloc}} for n, alloc in nodes.items()]

    def get_or_none(self, res: Any, name: str, namespace: str | None = None) -> dict[str, Any] | None:
        return self.objects.get(res.plural)

    def list(self, res: Any, namespace: str | None = None, **kw: Any) -> list[dict[str, Any]]:
        return {"pods": self.pods, "nodes": self.nodes}.get(res.plural, [])


def readiness(kube: FakeKube, opts: agentm.InstallOptions) -> tuple[bool, str, list[str]]:
    """The rule `install --wait` applies to what its watches hold, on the fake's objects."""
    r = readiness_of(kube.objects["daemonsets"], kube.pods, kube.nodes, wanted_resources(kube, opts),  # type: ignore[arg-type]
                     opts.namespace)
    return r.ok, r.summary, r.lagging


def status(desired: int, ready: int, observed: int) -> dict[str, Any]:
    return {"desiredNumberScheduled": desired, "numberReady": ready, "updatedNumberScheduled": ready,
            "observedGeneration": observed}


CONF = [{"name": "dp", "lowerDevice": "eth0"}, {"name": "legacy", "master": "eth1"}]
DP = {"macvtap.network.kubevirt.io/dp": "100"}


def test_ready_when_the_scheduled_nodes_advertise_what_can_be_served() -> None:
    """node-c runs no agent (tainted): it never counts; `legacy` can never be served: never waited for."""
    kube = FakeKube(status(2, 2, 3), 3, ["node-a", "node-b"], {"node-a": DP, "node-b": DP, "node-c": {}}, CONF)
    ok, summary, lagging = readiness(kube, agentm.InstallOptions())
    assert ok and lagging == [] and "2/2 node(s) advertise 1 resource(s)" in summary


def test_a_rollout_not_observed_yet_is_not_ready_whatever_the_counts() -> None:
    kube = FakeKube(status(2, 2, 2), 3, ["node-a", "node-b"], {"node-a": DP, "node-b": DP}, CONF)
    ok, _, lagging = readiness(kube, agentm.InstallOptions())
    assert not ok and "the new rollout not observed yet" in lagging[0]


def test_a_scheduled_node_not_advertising_is_named() -> None:
    kube = FakeKube(status(2, 2, 1), 1, ["node-a", "node-b"], {"node-a": DP, "node-b": {}}, CONF)
    ok, _, lagging = readiness(kube, agentm.InstallOptions())
    assert not ok and lagging == ["node-b (not advertising macvtap.network.kubevirt.io/dp)"]


def test_a_resource_published_at_zero_is_not_advertised_yet() -> None:
    """The kubelet can publish the resource at 0 before the plugin's first device list reaches it."""
    zero = {"macvtap.network.kubevirt.io/dp": "0"}
    kube = FakeKube(status(2, 2, 1), 1, ["node-a", "node-b"], {"node-a": DP, "node-b": zero}, CONF)
    ok, _, lagging = readiness(kube, agentm.InstallOptions())
    assert not ok and lagging == ["node-b (not advertising macvtap.network.kubevirt.io/dp)"]


def test_installs_configmap_lost_to_a_concurrent_creator_is_theirs_and_unchanged() -> None:
    """Issue 12.3: the create race of install's ConfigMap (an `expose` or another install created it between our
    read and our create) is not an error: the ConfigMap is never overwritten, so it is `unchanged`."""
    from macvtapctl.kube.errors import AlreadyExistsError
    from macvtapctl.kube.options import DryRun
    from macvtapctl.ops.install import apply_objects

    theirs = {"metadata": {"name": "macvtap-deviceplugin-config", "namespace": "macvtap"},
              "data": {"DP_MACVTAP_CONF": '[{"name": "dp", "lowerDevice": "eth0"}]'}}

    class Racing:
        def get_or_none(self, *args: Any) -> None:
            return None  # not there when we looked

        def create(self, *args: Any, **kw: Any) -> dict[str, Any]:
            raise AlreadyExistsError("configmaps already exists")

        def get(self, *args: Any) -> dict[str, Any]:
            return theirs

    lines: list[str] = []

    class Report:
        def status(self, label: str, op: str, suffix: str = "") -> None:
            lines.append(f"{label} {op}")

    objs = [agentm.configmap(agentm.InstallOptions())]
    assert apply_objects(Racing(), Report(), DryRun.NONE, objs, "macvtap") == [theirs]  # type: ignore[arg-type]
    assert lines == ["configmap/macvtap-deviceplugin-config unchanged"]


def test_a_withdrawn_resource_is_waited_for_until_allocatable_drops() -> None:
    """unexpose --wait: the kubelet keeps a gone plugin's capacity for 5 minutes; allocatable 0 is "withdrawn"."""
    kube = FakeKube(status(2, 2, 3), 3, ["node-a", "node-b"],
                    {"node-a": {"macvtap.network.kubevirt.io/dp": "0"}, "node-b": DP}, CONF)
    r = readiness_of(kube.objects["daemonsets"], kube.pods, kube.nodes, [], "macvtap",  # type: ignore[arg-type]
                     gone=["macvtap.network.kubevirt.io/dp"])
    assert not r.ok and r.lagging == ["node-b (still advertising macvtap.network.kubevirt.io/dp)"]
    assert r.summary.endswith("1/2 node(s) advertise 0 resource(s) and withdrew 1")
    kube.nodes[1]["status"]["allocatable"] = {}
    assert readiness_of(kube.objects["daemonsets"], kube.pods, kube.nodes, [], "macvtap",  # type: ignore[arg-type]
                        gone=["macvtap.network.kubevirt.io/dp"]).ok


def test_pods_older_than_the_configmaps_last_write_serve_an_older_configuration() -> None:
    from macvtapctl.rules import device_plugins

    cm = {"metadata": {"managedFields": [{"time": "2026-12-01T10:00:00Z"}, {"time": "2026-12-02T10:00:00Z"}]}}
    pods = [{"metadata": {"name": n}, "status": {"startTime": t}} for n, t in
            (("old", "2026-12-02T09:59:59Z"), ("new", "2026-12-02T10:00:01Z"), ("pending", None))]
    assert [p["metadata"]["name"] for p in device_plugins.started_before(cm, pods)] == ["old"]
    assert device_plugins.started_before({"metadata": {}}, pods) == []  # no write time known: nothing is judged stale
