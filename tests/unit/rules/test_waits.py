"""The conditions the waits evaluate on what their watches hold (rules/waits.py): plain dicts, no client. The
readiness rule itself is tests/unit/test_deploy_readiness.py's."""

from __future__ import annotations

from typing import Any

from macvtapctl import identity
from macvtapctl.rules import waits
from tests.unit.rules.test_device_plugins import agent_ds, pod, upstream_ds


def rolled(ds: dict[str, Any], desired: int, ready: int, updated: int | None = None,
           observed: int | None = None) -> dict[str, Any]:
    generation = ds["metadata"].get("generation") or 1
    return {**ds, "status": {"desiredNumberScheduled": desired, "numberReady": ready,
                             "updatedNumberScheduled": ready if updated is None else updated,
                             "observedGeneration": generation if observed is None else observed}}


def test_a_goal_names_the_agent_or_the_daemonset() -> None:
    assert waits.Goal("macvtap", []).what == "the agent"
    assert waits.Goal("kubevirt-macvtap", [], daemonset="macvtap-cni").what == "macvtap-cni"


def test_the_selector_is_the_daemonsets_match_labels_sorted() -> None:
    assert waits.selector_of(upstream_ds()) == "name=macvtap-cni"
    assert waits.selector_of({"spec": {"selector": {"matchLabels": {"b": "2", "a": "1"}}}}) == "a=1,b=2"
    assert waits.selector_of({}) == ""


def test_what_is_left_of_a_daemonset_counts_only_the_pods_it_owns() -> None:
    ds = upstream_ds()
    theirs = pod(ds, "node-a")
    others = {**pod(ds, "node-b"), "metadata": {"name": "x", "ownerReferences": [{"kind": "DaemonSet",
                                                                                   "name": "someone-else"}]}}
    assert waits.left_of(ds, [theirs, others], "macvtap-cni") == waits.Left(daemonset=True, pods=1)
    assert waits.left_of(None, [theirs, others], "macvtap-cni") == waits.Left(daemonset=False, pods=1)
    assert waits.left_of(None, [others], "macvtap-cni") is None
    assert waits.left_of(None, [], "macvtap-cni") is None


def test_upstream_is_rolled_out_once_every_pod_of_its_template_is_ready() -> None:
    ns = "kubevirt-macvtap"
    assert waits.upstream_rollout([], ns, "macvtap-cni") == (None, "its DaemonSet does not exist yet")
    assert waits.upstream_rollout([agent_ds(ns)], ns, None) == (None, "its DaemonSet does not exist yet")
    plugin, problem = waits.upstream_rollout([rolled(upstream_ds(ns), 2, 1, updated=2)], ns, "macvtap-cni")
    assert plugin is not None and plugin.label == f"DaemonSet {ns}/macvtap-cni" and problem == "1/2 pods ready"
    plugin, problem = waits.upstream_rollout([agent_ds(ns), rolled(upstream_ds(ns), 2, 2)], ns, None)
    assert plugin is not None and problem is None  # CNAO's: any macvtap-cni of the namespace
    assert waits.upstream_rollout([rolled(upstream_ds(ns), 2, 2)], ns, "other")[1] == "its DaemonSet does not exist yet"
    assert waits.upstream_rollout([rolled(upstream_ds("elsewhere"), 2, 2)], ns, None)[0] is None


def test_the_nodes_are_cleaned_when_the_uninstall_template_is_ready_everywhere() -> None:
    ds = {"metadata": {"name": identity.AGENT_NAME, "generation": 3}}
    assert waits.cleaned(rolled(ds, 3, 3)) == 3
    assert waits.cleaned(rolled(ds, 3, 3, updated=2)) is None  # a node still runs the old template
    assert waits.cleaned(rolled(ds, 3, 2)) is None
    assert waits.cleaned(rolled(ds, 3, 3, observed=2)) is None  # the patch not observed yet: old counts


DP, OTHER = "macvtap.network.kubevirt.io/dataplane", "macvtap.network.kubevirt.io/other"
UP_SOCKET = "/var/lib/kubelet/device-plugins/macvtap.network.kubevirt.io_dataplane"


def plugins(**by_resource: dict[str, Any]) -> dict[str, Any]:
    return {"node": "n", "checks": [], "plugins": {r.replace("_", "/", 1): p for r, p in by_resource.items()}}


def test_the_agent_may_leave_a_node_once_its_kubelet_holds_upstreams_plugin_for_all_it_advertises() -> None:
    """Issue 37 item 5: rolled out is not registered. Each resource the agent advertises needs another plugin
    the kubelet is connected to; a resource only macvtap-cni serves needs nothing from the agent."""
    served = plugins(**{"macvtap.network.kubevirt.io_dataplane": {"advertised": True, "ours": True,
                                                                   "others": [UP_SOCKET]},
                        "macvtap.network.kubevirt.io_extra": {"advertised": False, "ours": False,
                                                              "others": ["/x"]}})
    waiting = plugins(**{"macvtap.network.kubevirt.io_dataplane": {"advertised": True, "ours": True,
                                                                    "others": [UP_SOCKET]},
                         "macvtap.network.kubevirt.io_other": {"advertised": True, "ours": True, "others": []}})
    state = waits.handed_back({"a": served, "b": waiting, "c": "its agent did not answer: 503"}, ["a", "b", "c"])
    assert not state.ok
    assert state.lagging == [f"b (for {OTHER})", "c (its agent did not answer: 503)"]
    assert state.summary == "registered with the kubelet on 1/3 node(s)"
    state = waits.handed_back({"a": served, "b": served}, ["a", "b"])
    assert state.ok and state.lagging == [] and state.summary == "registered with the kubelet on 2/2 node(s)"
    assert waits.handed_back({}, []).ok  # no agent running: nothing of it to leave


def test_nodes_without_macvtap_cni_or_whose_agent_cannot_say_are_not_waited_for_but_named() -> None:
    waiting = plugins(**{"macvtap.network.kubevirt.io_dataplane": {"advertised": True, "ours": True, "others": []}})
    old = {"node": "old", "checks": []}  # an agent older than the `plugins` field
    state = waits.handed_back({"a": waiting, "b": old}, ["b"])
    assert state.ok and state.uncovered == ["a"] and state.unverified == ["b"] and state.checked == 0


def deployment(wanted: int | None, generation: int = 2, **status: Any) -> dict[str, Any]:
    spec = {} if wanted is None else {"replicas": wanted}
    return {"metadata": {"name": "macvtapctl-injector", "generation": generation}, "spec": spec,
            "status": {"observedGeneration": generation, **status}}


def test_a_deployment_is_rolled_out_when_every_replica_is_updated_and_available() -> None:
    assert waits.deployment_rollout(deployment(2, replicas=2, updatedReplicas=2, availableReplicas=2)) is None
    assert waits.deployment_rollout(deployment(None, replicas=1, updatedReplicas=1, availableReplicas=1)) is None
    # the state `install --injector --wait` returned in before: one of two replicas ready
    assert waits.deployment_rollout(deployment(2, replicas=2, updatedReplicas=2, availableReplicas=1)) == \
        "1 of 2 updated replicas are available"
    assert waits.deployment_rollout(deployment(2, replicas=2, updatedReplicas=1, availableReplicas=2)) == \
        "1 of 2 new replicas have been updated"
    assert waits.deployment_rollout(deployment(2, replicas=3, updatedReplicas=2, availableReplicas=2)) == \
        "1 old replicas are pending termination"
    stale = deployment(2, replicas=2, updatedReplicas=2, availableReplicas=2)
    stale["status"]["observedGeneration"] = 1
    assert waits.deployment_rollout(stale) == "waiting for the Deployment's spec to be observed"
    stuck = deployment(2, conditions=[{"type": "Progressing", "reason": "ProgressDeadlineExceeded",
                                       "message": "ReplicaSet has timed out progressing."}])
    assert waits.deployment_rollout(stuck) == ("it exceeded its progress deadline: ReplicaSet has timed out "
                                               "progressing.")
    assert waits.deployment_rollout(None) == "the Deployment is not there"
