"""The node agent's objects (pure): namespace, ServiceAccount, its Role and RoleBinding, DP ConfigMap, DaemonSet;
CNAO and KinD configs.

Least privilege, and why (docs/install.md): the agent's one use of the API server is to follow its ConfigMap (a
change reaches the node in a second, not after the kubelet's sync period): a Role in its namespace allows get,
list and watch on that one ConfigMap by name, and a token is projected into the agent container only (the
ServiceAccount and the pod do not automount one). The mounted ConfigMap stays its fallback. It is not
privileged; it keeps only:
NET_ADMIN (create, move and configure links), SYS_ADMIN (setns into pod network namespaces), SYS_PTRACE
(open /proc/<pid>/ns/net of other users' processes), CHOWN (hand /dev/tapN to qemu), NET_RAW (doctor's DHCP
probe: one DISCOVER on a packet socket bound to its throwaway macvtap; the migration hand-off's ARP/RARP
listener, agent/handoff.py), and runs as root
because the kubelet's device-plugin directory and the CNI bin dir are root's.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from macvtapctl import identity, validate
from macvtapctl.errors import UsageError
from macvtapctl.rules import dpconfig

DEFAULT_IMAGE = "quay.io/macvtapctl/agent:v0.1.0"
CAPABILITIES = ["NET_ADMIN", "SYS_ADMIN", "SYS_PTRACE", "CHOWN", "NET_RAW"]


@dataclass
class InstallOptions:
    image: str = DEFAULT_IMAGE
    namespace: str = identity.DEFAULT_NAMESPACE
    node_selector: dict[str, str] = field(default_factory=dict)
    tolerations: list[dict[str, Any]] = field(default_factory=list)
    cni_bin_dir: str = identity.CNI_BIN_DIR
    device_plugin_dir: str = identity.DEVICE_PLUGIN_DIR
    configmap: str = dpconfig.CONFIGMAP_NAME


def parse_node_selector(values: list[str]) -> dict[str, str]:
    return validate.parse_labels(values, "--node-selector")


def parse_toleration(value: str) -> dict[str, Any]:
    """kubectl-like `KEY[=VALUE][:EFFECT]`, or `*` for "tolerate everything"."""
    if value == "*":
        return {"operator": "Exists"}
    spec, _, effect = value.partition(":")
    if effect and effect not in ("NoSchedule", "PreferNoSchedule", "NoExecute"):
        raise UsageError(f'invalid --toleration "{value}": effect must be NoSchedule, PreferNoSchedule or NoExecute')
    key, sep, val = spec.partition("=")
    if not key:
        raise UsageError(f'invalid --toleration "{value}": expected KEY[=VALUE][:EFFECT] or *')
    validate.check_label(key, val)
    tol: dict[str, Any] = {"key": key, "operator": "Equal" if sep else "Exists"}
    if sep:
        tol["value"] = val
    if effect:
        tol["effect"] = effect
    return tol


def check_host_path(path: str, flag: str) -> str:
    if not path.startswith("/") or "\0" in path or ".." in path.split("/"):
        raise UsageError(f'invalid {flag} "{path}": must be an absolute path without ".."')
    return path.rstrip("/") or "/"


def namespace(opts: InstallOptions) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "Namespace",
            "metadata": {"name": opts.namespace, "labels": {
                **identity.LABELS,
                # The agent is a privileged-class workload (host network, host PID, hostPath mounts).
                "pod-security.kubernetes.io/enforce": "privileged"}}}


def service_account(opts: InstallOptions) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "ServiceAccount",
            "metadata": {"name": identity.AGENT_NAME, "namespace": opts.namespace, "labels": dict(identity.LABELS)},
            "automountServiceAccountToken": False}


def role(opts: InstallOptions) -> dict[str, Any]:
    """Read the one ConfigMap the agent follows, by name: `list` and `watch` with resourceNames are allowed only
    for requests that select that name (fieldSelector metadata.name=NAME), which is how the agent asks."""
    return {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "Role",
            "metadata": {"name": identity.AGENT_NAME, "namespace": opts.namespace, "labels": dict(identity.LABELS)},
            "rules": [{"apiGroups": [""], "resources": ["configmaps"], "resourceNames": [opts.configmap],
                       "verbs": ["get", "list", "watch"]}]}


def role_binding(opts: InstallOptions) -> dict[str, Any]:
    return {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "RoleBinding",
            "metadata": {"name": identity.AGENT_NAME, "namespace": opts.namespace, "labels": dict(identity.LABELS)},
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": identity.AGENT_NAME},
            "subjects": [{"kind": "ServiceAccount", "name": identity.AGENT_NAME, "namespace": opts.namespace}]}


def cluster_role() -> dict[str, Any]:
    """In any namespace (a VM's is anyone's): create Events — the migration hand-off says on the VMI when it took
    the source link out of the L2 domain, or had to put it back (agent/events.py); get a pod — a CNI ADD for a
    KubeVirt launcher asks whether it is a migration's target, whose link is then attached parked
    (agent/migration_target.py). Nothing else cluster-wide: no list, no watch, no write to pods."""
    return {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRole",
            "metadata": {"name": identity.AGENT_NAME, "labels": dict(identity.LABELS)},
            "rules": [{"apiGroups": [""], "resources": ["events"], "verbs": ["create"]},
                      {"apiGroups": [""], "resources": ["pods"], "verbs": ["get"]}]}


def cluster_role_binding(opts: InstallOptions) -> dict[str, Any]:
    return {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRoleBinding",
            "metadata": {"name": identity.AGENT_NAME, "labels": dict(identity.LABELS)},
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": identity.AGENT_NAME},
            "subjects": [{"kind": "ServiceAccount", "name": identity.AGENT_NAME, "namespace": opts.namespace}]}


TOKEN_SECONDS = 3607  # the kubelet rotates the token at 80% of its life; the agent reads it on each connection


def api_token_volume() -> dict[str, Any]:
    """What automountServiceAccountToken would give every container, for the agent container only."""
    return {"name": "api-token", "projected": {"defaultMode": 0o400, "sources": [
        {"serviceAccountToken": {"path": "token", "expirationSeconds": TOKEN_SECONDS}},
        {"configMap": {"name": "kube-root-ca.crt", "items": [{"key": "ca.crt", "path": "ca.crt"}]}},
        {"downwardAPI": {"items": [{"path": "namespace", "fieldRef": {"fieldPath": "metadata.namespace"}}]}}]}}


def configmap(opts: InstallOptions) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "ConfigMap",
            "metadata": {"name": opts.configmap, "namespace": opts.namespace, "labels": dict(identity.LABELS)},
            "data": {dpconfig.CONFIG_KEY: "[]"}}


def pod_resources_dir(opts: InstallOptions) -> str:
    """The kubelet keeps device-plugins/ and pod-resources/ side by side in its root dir (k3s too)."""
    return opts.device_plugin_dir.rsplit("/", 1)[0] + "/pod-resources"


def _host_path(name: str, path: str, kind: str = "Directory") -> dict[str, Any]:
    return {"name": name, "hostPath": {"path": path, "type": kind}}


def daemonset(opts: InstallOptions) -> dict[str, Any]:
    # Bind health/metrics to the node's own address (the kubelet's probes and a scrape reach it there), not to
    # every address of the host network.
    args = ["agent", "--install-cni", "/host/cni-bin", "--cni-socket", identity.CNI_SOCKET,
            "--metrics-address", f"$(HOST_IP):{identity.METRICS_PORT}",
            "--pod-resources-socket", f"{pod_resources_dir(opts)}/kubelet.sock"]
    # In the environment, not in args: `kubectl exec ds/macvtapctl-agent -- macvtapctl agent check` then reads
    # the same configuration and directories as the agent.
    env = [{"name": "MACVTAPCTL_CONFIG_FILE", "value": f"/etc/macvtap/{dpconfig.CONFIG_KEY}"},
           {"name": "MACVTAPCTL_CONFIGMAP", "value": opts.configmap},
           {"name": "POD_NAMESPACE", "valueFrom": {"fieldRef": {"fieldPath": "metadata.namespace"}}},
           {"name": "MACVTAPCTL_DEVICE_PLUGIN_DIR", "value": opts.device_plugin_dir},
           {"name": "HOST_IP", "valueFrom": {"fieldRef": {"fieldPath": "status.hostIP"}}},
           {"name": "NODE_NAME", "valueFrom": {"fieldRef": {"fieldPath": "spec.nodeName"}}}]
    probe = {"httpGet": {"path": "/healthz", "port": identity.METRICS_PORT}, "periodSeconds": 10, "failureThreshold": 3}
    container = {
        "name": "agent",
        "image": opts.image,
        "command": ["macvtapctl"],
        "args": args,
        "env": env,
        "securityContext": {
            "privileged": False,
            "runAsUser": 0,
            "allowPrivilegeEscalation": False,
            "readOnlyRootFilesystem": True,
            "capabilities": {"drop": ["ALL"], "add": list(CAPABILITIES)},
            "seccompProfile": {"type": "RuntimeDefault"},
        },
        "ports": [{"name": "metrics", "containerPort": identity.METRICS_PORT, "protocol": "TCP"}],
        "livenessProbe": probe,
        "readinessProbe": {**probe, "httpGet": {"path": "/readyz", "port": identity.METRICS_PORT}, "periodSeconds": 5},
        "resources": {"requests": {"cpu": "50m", "memory": "80Mi"}, "limits": {"memory": "256Mi"}},
        "volumeMounts": [
            {"name": "device-plugins", "mountPath": opts.device_plugin_dir},
            # Which device IDs live pods own: links no pod owns are reclaimed (read-only use of the API).
            {"name": "pod-resources", "mountPath": pod_resources_dir(opts)},
            {"name": "cni-bin", "mountPath": "/host/cni-bin"},
            {"name": "dev", "mountPath": "/dev"},
            {"name": "socket-dir", "mountPath": "/run/macvtapctl"},
            # Pod netns bind mounts created after the agent started must appear inside it.
            {"name": "netns", "mountPath": "/run/netns", "mountPropagation": "HostToContainer"},
            {"name": "config", "mountPath": "/etc/macvtap", "readOnly": True},
            {"name": "api-token", "mountPath": identity.SERVICE_ACCOUNT_DIR, "readOnly": True},
            {"name": "tmp", "mountPath": "/tmp"},  # noqa: S108 - a private emptyDir: the root fs is read-only
        ],
    }
    pod_spec: dict[str, Any] = {
        "serviceAccountName": identity.AGENT_NAME,
        "automountServiceAccountToken": False,
        "hostNetwork": True,
        "hostPID": True,  # CNI_NETNS may be /proc/<pid>/ns/net
        "dnsPolicy": "ClusterFirstWithHostNet",
        "priorityClassName": "system-node-critical",
        "terminationGracePeriodSeconds": 10,
        "tolerations": opts.tolerations or [{"operator": "Exists"}],
        "containers": [container],
        "volumes": [
            _host_path("device-plugins", opts.device_plugin_dir),
            _host_path("pod-resources", pod_resources_dir(opts)),
            _host_path("cni-bin", opts.cni_bin_dir, "DirectoryOrCreate"),
            _host_path("dev", "/dev"),
            _host_path("socket-dir", "/run/macvtapctl", "DirectoryOrCreate"),
            _host_path("netns", "/run/netns", "DirectoryOrCreate"),
            {"name": "config", "configMap": {"name": opts.configmap}},
            api_token_volume(),
            {"name": "tmp", "emptyDir": {"medium": "Memory", "sizeLimit": "16Mi"}},
        ],
    }
    if opts.node_selector:
        pod_spec["nodeSelector"] = dict(opts.node_selector)
    return {
        "apiVersion": "apps/v1", "kind": "DaemonSet",
        "metadata": {"name": identity.AGENT_NAME, "namespace": opts.namespace, "labels": dict(identity.LABELS)},
        "spec": {
            "selector": {"matchLabels": {identity.NAME_LABEL: identity.AGENT_NAME}},
            "updateStrategy": {"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": 1}},
            "template": {"metadata": {"labels": dict(identity.LABELS)}, "spec": pod_spec},
        },
    }


# The namespace and the device-plugin ConfigMap are the user's as much as the agent's (expose writes the ConfigMap;
# after a take-over both are macvtap-cni's): install creates them when absent, uninstall deletes them only with
# --purge. The rest goes with the agent.
SHARED_KINDS = ("Namespace", "ConfigMap")


def objects(opts: InstallOptions) -> list[dict[str, Any]]:
    """Every object install writes for the agent, in the order it applies them (each after what it refers to);
    uninstall deletes them in reverse."""
    return [namespace(opts), service_account(opts), role(opts), role_binding(opts), cluster_role(),
            cluster_role_binding(opts), configmap(opts), daemonset(opts)]


def own_objects(opts: InstallOptions) -> list[dict[str, Any]]:
    """objects() without the shared ones: what --take-over adds beside macvtap-cni, and what uninstall and
    --restore-upstream always delete."""
    return [o for o in objects(opts) if o["kind"] not in SHARED_KINDS]


def network_addons_config(device_plugin_config: str | None) -> dict[str, Any]:
    macvtap: dict[str, Any] = {}
    if device_plugin_config:
        macvtap["devicePluginConfig"] = device_plugin_config
    return {"apiVersion": "networkaddonsoperator.network.kubevirt.io/v1", "kind": "NetworkAddonsConfig",
            "metadata": {"name": "cluster"}, "spec": {"macvtap": macvtap}}


def kind_config(nodes: int) -> dict[str, Any]:
    """KinD nodes are containers: /dev/tapN appears in the host's devtmpfs, so mount the host /dev into each."""
    if not 1 <= nodes <= 100:
        raise UsageError(f"invalid --nodes {nodes}: must be from 1 to 100")
    mount = [{"hostPath": "/dev", "containerPath": "/dev", "propagation": "HostToContainer"}]
    roles = ["control-plane"] + ["worker"] * (nodes - 1)
    return {"kind": "Cluster", "apiVersion": "kind.x-k8s.io/v1alpha4",
            "nodes": [{"role": role, "extraMounts": [dict(m) for m in mount]} for role in roles]}
