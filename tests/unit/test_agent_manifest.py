"""The agent DaemonSet as `install` renders it: what the node-side fixes of issue 13 rely on."""

from __future__ import annotations

from macvtapctl import identity
from macvtapctl.manifests import agent as agentm


def _container() -> dict:
    return agentm.daemonset(agentm.InstallOptions())["spec"]["template"]["spec"]["containers"][0]


def test_the_configuration_is_in_the_environment_so_an_in_pod_agent_check_finds_it() -> None:
    """Issue 13.5: `kubectl exec ds/macvtapctl-agent -- macvtapctl agent check` inherits the container's env."""
    c = _container()
    env = {e["name"]: e.get("value") for e in c["env"]}
    assert env["MACVTAPCTL_CONFIG_FILE"] == "/etc/macvtap/DP_MACVTAP_CONF"
    assert env["MACVTAPCTL_DEVICE_PLUGIN_DIR"] == "/var/lib/kubelet/device-plugins"
    assert "--config-file" not in c["args"] and "--device-plugin-dir" not in c["args"]


def test_health_and_metrics_bind_to_the_nodes_own_address() -> None:
    """Issue 13.16: not 0.0.0.0 on a host-network pod; the downward API gives the node's address."""
    c = _container()
    host_ip = next(e for e in c["env"] if e["name"] == "HOST_IP")
    assert host_ip["valueFrom"] == {"fieldRef": {"fieldPath": "status.hostIP"}}
    i = c["args"].index("--metrics-address")
    assert c["args"][i + 1] == f"$(HOST_IP):{identity.METRICS_PORT}"


def test_the_agents_objects_are_listed_once_the_shared_ones_apart() -> None:
    """install applies objects() in order, --take-over own_objects(), uninstall deletes them in reverse (the
    namespace and ConfigMap only with --purge)."""
    opts = agentm.InstallOptions(namespace="ns", configmap="cm")
    assert [(o["kind"], o["metadata"]["name"]) for o in agentm.objects(opts)] == [
        ("Namespace", "ns"), ("ServiceAccount", identity.AGENT_NAME), ("Role", identity.AGENT_NAME),
        ("RoleBinding", identity.AGENT_NAME), ("ClusterRole", identity.AGENT_NAME),
        ("ClusterRoleBinding", identity.AGENT_NAME), ("ConfigMap", "cm"), ("DaemonSet", identity.AGENT_NAME)]
    assert [o["kind"] for o in agentm.own_objects(opts)] == ["ServiceAccount", "Role", "RoleBinding", "ClusterRole",
                                                              "ClusterRoleBinding", "DaemonSet"]


def test_the_agents_only_cluster_wide_rights_are_creating_events_and_getting_a_pod() -> None:
    """Least privilege: the hand-off's Events on VMIs in any namespace, and one pod read by name (is a launcher a
    migration's target?); nothing else cluster-wide."""
    opts = agentm.InstallOptions(namespace="ns")
    assert agentm.cluster_role()["rules"] == [{"apiGroups": [""], "resources": ["events"], "verbs": ["create"]},
                                             {"apiGroups": [""], "resources": ["pods"], "verbs": ["get"]}]
    binding = agentm.cluster_role_binding(opts)
    assert binding["subjects"] == [{"kind": "ServiceAccount", "name": identity.AGENT_NAME, "namespace": "ns"}]
