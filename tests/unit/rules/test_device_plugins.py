"""Which DaemonSets serve macvtap, what each reads, where two run (macvtapctl/plugins.py), and the take-over
record (manifests/takeover.py): plain dicts, no client."""

from __future__ import annotations

from typing import Any

from macvtapctl.manifests import agent as agentm
from macvtapctl.manifests import takeover
from macvtapctl.rules import device_plugins


def upstream_ds(ns: str = "kubevirt-macvtap", cm: str = "macvtap-deviceplugin-config", *,
                key_ref: bool = False, owner: str | None = None) -> dict[str, Any]:
    """The shape of upstream's templates/macvtap.yaml.in (envFrom its ConfigMap), or CNAO's copy of it."""
    env: dict[str, Any] = ({"env": [{"name": "DP_MACVTAP_CONF", "valueFrom": {"configMapKeyRef": {
        "name": cm, "key": "DP_MACVTAP_CONF"}}}]} if key_ref else {"envFrom": [{"configMapRef": {"name": cm}}]})
    meta: dict[str, Any] = {"name": "macvtap-cni", "namespace": ns, "uid": "u1", "resourceVersion": "7",
                            "generation": 2, "annotations": {"deprecated.daemonset.template.generation": "2",
                                                             "team": "net"},
                            "managedFields": [{"manager": "kubectl"}]}
    if owner:
        meta["ownerReferences"] = [{"kind": "NetworkAddonsConfig", "name": owner, "apiVersion": "x/v1", "uid": "n"}]
    return {"apiVersion": "apps/v1", "kind": "DaemonSet", "metadata": meta,
            "spec": {"selector": {"matchLabels": {"name": "macvtap-cni"}},
                     "template": {"metadata": {"labels": {"name": "macvtap-cni"}}, "spec": {"containers": [
                         {"name": "macvtap-cni", "image": "quay.io/kubevirt/macvtap-cni:v0.13.0",
                          "command": ["/macvtap-deviceplugin", "-v", "3"], **env}]}}},
            "status": {"numberReady": 1}}


def agent_ds(ns: str = "macvtap", cm: str = "macvtap-deviceplugin-config") -> dict[str, Any]:
    return agentm.daemonset(agentm.InstallOptions(namespace=ns, configmap=cm))


def pod(ds: dict[str, Any], node: str, phase: str = "Running") -> dict[str, Any]:
    return {"metadata": {"namespace": ds["metadata"]["namespace"], "name": f"{ds['metadata']['name']}-{node}",
                         "ownerReferences": [{"kind": "DaemonSet", "name": ds["metadata"]["name"]}]},
            "spec": {"nodeName": node}, "status": {"phase": phase}}


def test_each_plugin_is_named_with_the_configmap_it_reads() -> None:
    up = device_plugins.of(upstream_ds())
    assert up == device_plugins.Plugin(device_plugins.UPSTREAM, "kubevirt-macvtap", "macvtap-cni", "macvtap-deviceplugin-config",
                                None)
    assert device_plugins.of(upstream_ds(cm="mine", key_ref=True)).configmap == "mine"  # type: ignore[union-attr]
    cnao = device_plugins.of(upstream_ds("cluster-network-addons", owner="cluster"))
    assert cnao is not None and cnao.cnao == "cluster"
    assert cnao.describe() == ("DaemonSet cluster-network-addons/macvtap-cni (macvtap-cni, deployed by CNAO's "
                               "NetworkAddonsConfig cluster, reads ConfigMap cluster-network-addons/"
                               "macvtap-deviceplugin-config)")
    ours = device_plugins.of(agent_ds("kubevirt-macvtap", "theirs"))
    assert ours == device_plugins.Plugin(device_plugins.AGENT, "kubevirt-macvtap", "macvtapctl-agent", "theirs", None)


def test_other_daemonsets_are_not_plugins() -> None:
    other = upstream_ds()
    c = other["spec"]["template"]["spec"]["containers"][0]
    c["command"], c["image"] = ["/bin/kube-proxy"], "registry.k8s.io/kube-proxy:v1.37.2"
    assert device_plugins.of(other) is None
    # Matched by the image alone (a command overridden by a wrapper), with a registry port in the reference.
    c["command"], c["image"] = ["/entry.sh"], "registry.local:5000/kubevirt/macvtap-cni@sha256:abc"
    assert device_plugins.of(other) is not None and device_plugins.of(other).kind == device_plugins.UPSTREAM  # type: ignore[union-attr]
    assert [p.name for p, _ in device_plugins.find([agent_ds(), upstream_ds(), {**other, "metadata": {
        **other["metadata"], "name": "a-first"}}])] == ["a-first", "macvtap-cni", "macvtapctl-agent"]


def test_shared_nodes_are_the_ones_with_two_live_plugins() -> None:
    up, ours = upstream_ds(), agent_ds()
    ps = [p for p, _ in device_plugins.find([up, ours])]
    pods = [pod(up, "n1"), pod(ours, "n1"), pod(up, "n2"), pod(ours, "n3"), pod(up, "n3", "Succeeded"),
            pod(ours, "n1")]  # a second pod of the same plugin on n1 (a rollout) is not a second plugin
    shared = device_plugins.shared_nodes(ps, pods)
    assert list(shared) == ["n1"] and {p.kind for p in shared["n1"]} == {device_plugins.AGENT, device_plugins.UPSTREAM}
    assert device_plugins.readers(ps, "kubevirt-macvtap", "macvtap-deviceplugin-config") == [device_plugins.of(up)]


def test_the_record_gives_back_upstreams_daemonset_as_its_owner_wrote_it() -> None:
    ds = upstream_ds()
    rec = takeover.record("kubevirt-macvtap", "macvtap-deviceplugin-config", daemonset=ds)
    assert rec["metadata"]["name"] == takeover.RECORD_NAME and rec["metadata"]["labels"] == takeover.RECORD_LABELS
    back = takeover.saved_daemonset(rec)
    assert back is not None
    assert back["metadata"] == {"name": "macvtap-cni", "namespace": "kubevirt-macvtap",
                                "annotations": {"team": "net"}}  # no uid, resourceVersion, managedFields
    assert "status" not in back
    assert back["spec"]["template"] == ds["spec"]["template"]
    assert takeover.configmap_of(rec) == "macvtap-deviceplugin-config" and takeover.saved_cnao(rec) is None
    cnao = takeover.record("cna", "custom", cnao=("cluster", {"devicePluginConfig": "custom"}))
    assert takeover.saved_cnao(cnao) == ("cluster", {"devicePluginConfig": "custom"})
    assert takeover.saved_daemonset(cnao) is None


def configmap(ns: str, body: str = "[]") -> dict[str, Any]:
    return {"kind": "ConfigMap", "metadata": {"namespace": ns, "name": "macvtap-deviceplugin-config"},
            "data": {"DP_MACVTAP_CONF": body}}


def test_doctor_names_two_plugins_on_a_node_and_which_configmap_each_reads() -> None:
    """The state a plain `install` made beside a running macvtap-cni before it refused to: two plugins, two
    ConfigMaps; doctor says which reads which, never that one is missing, and the two-plugin node is an error."""
    from macvtapctl.rules import doctor

    up, ours = upstream_ds(), agent_ds()
    s = doctor.Snapshot(configmaps=[configmap("kubevirt-macvtap", '[{"name":"dataplane","lowerDevice":"eth1"}]'),
                                    configmap("macvtap")],
                        agents=[ours], upstream=[up], agent_pods=[pod(up, "n1"), pod(ours, "n1")])
    found = {f.id: f for f in doctor.diagnose(s)}
    two = found["two-device-plugins"]
    assert two.severity == doctor.ERROR and two.object == "node/n1"
    assert "DaemonSet kubevirt-macvtap/macvtap-cni (macvtap-cni, reads ConfigMap kubevirt-macvtap/" in two.cause
    assert "install --take-over" in two.fix
    several = found["dp-config-several"]
    assert several.severity == doctor.ERROR  # both are read: an edit reaches only half the plugins
    assert ("kubevirt-macvtap/macvtap-deviceplugin-config (read by DaemonSet kubevirt-macvtap/macvtap-cni); "
            "macvtap/macvtap-deviceplugin-config (read by DaemonSet macvtap/macvtapctl-agent)") in several.cause
    assert several.fix.startswith("macvtapctl uninstall -n macvtap && macvtapctl install --take-over")
    assert not any("missing" in f.cause or "no device-plugin ConfigMap" in f.cause for f in found.values())
    # After the take-over: one plugin, the ConfigMap nobody reads left over: a warning naming it.
    taken = agent_ds("kubevirt-macvtap")
    s = doctor.Snapshot(configmaps=s.configmaps, agents=[taken], agent_pods=[pod(taken, "n1")])
    found = {f.id: f for f in doctor.diagnose(s)}
    assert "two-device-plugins" not in found
    assert found["dp-config-several"].severity == doctor.WARNING
    assert "macvtap/macvtap-deviceplugin-config (read by no device plugin)" in found["dp-config-several"].cause
    assert found["dp-config-several"].fix.startswith("kubectl -n macvtap delete configmap")


def test_the_cni_bin_dir_is_where_macvtap_cni_installs_its_binary() -> None:
    ds = upstream_ds()
    spec = ds["spec"]["template"]["spec"]
    spec["initContainers"] = [{"name": "install-cni", "command": ["cp", "/macvtap-cni", "/host/opt/cni/bin/macvtap"],
                               "volumeMounts": [{"name": "cni", "mountPath": "/host/opt/cni/bin"}]}]
    spec["volumes"] = [{"name": "deviceplugin", "hostPath": {"path": "/var/lib/kubelet/device-plugins"}},
                       {"name": "cni", "hostPath": {"path": "/var/lib/cni/bin"}}]
    assert device_plugins.cni_bin_dir_of(ds) == "/var/lib/cni/bin"
    spec["initContainers"] = []
    assert device_plugins.cni_bin_dir_of(ds) is None
