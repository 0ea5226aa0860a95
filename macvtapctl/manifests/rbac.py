"""Least-privilege RBAC for running the admin commands (enable, expose, nad, setup, vm create --apply, status,
doctor). doctor's node reports need `get pods/proxy` in the agent's namespace: a Role there (docs/install.md),
not a cluster-wide rule."""

from __future__ import annotations

from typing import Any

from macvtapctl.rules import dpconfig

# (apiGroups, resources, verbs, resourceNames, why) - one line each so reviewers can audit the list.
ADMIN_RULES: list[tuple[list[str], list[str], list[str], list[str], str]] = [
    (["kubevirt.io"], ["kubevirts"], ["get", "list", "patch"], [],
     "enable/disable: find the KubeVirt CR in any namespace and merge-patch it"),
    (["hco.kubevirt.io"], ["hyperconvergeds"], ["get", "list", "patch"], [],
     "enable/disable when HyperConverged manages KubeVirt"),
    (["kubevirt.io"], ["virtualmachines"], ["get", "list", "create", "patch"], [],
     "vm create --apply (server-side apply), vm check, and the in-use checks"),
    (["kubevirt.io"], ["virtualmachineinstances"], ["get", "list"], [],
     "in-use checks for standalone VMIs"),
    (["k8s.cni.cncf.io"], ["network-attachment-definitions"], ["get", "list", "create", "patch", "delete"], [],
     "nad create/list/delete"),
    ([""], ["configmaps"], ["list", "create"], [],
     "expose: find the device-plugin ConfigMap (list cannot be narrowed by name) and create it"),
    ([""], ["configmaps"], ["get", "patch"], [dpconfig.CONFIGMAP_NAME],
     "expose/unexpose: read-modify-write only the device-plugin ConfigMap"),
    ([""], ["namespaces"], ["get", "create"], [],
     "expose: create the agent namespace when it is missing"),
    (["apps"], ["daemonsets"], ["get", "list"], [],
     "expose: notice an upstream macvtap-cni DaemonSet that needs a restart"),
    (["apps"], ["daemonsets"], ["patch"], ["macvtap-cni"],
     "expose --restart: rollout-restart the upstream DaemonSet"),
    (["networkaddonsoperator.network.kubevirt.io"], ["networkaddonsconfigs"], ["get", "list"], [],
     "expose: follow CNAO's devicePluginConfig; doctor"),
    ([""], ["nodes", "pods"], ["list"], [],
     "status, doctor: node capacities, agent and virt-launcher pods (read-only)"),
    ([""], ["events"], ["list"], [],
     "doctor: the Warning events of pods and VMIs on macvtap that do not start (read-only)"),
]


def cluster_role(name: str, configmaps: list[str] | None = None) -> dict[str, Any]:
    """`configmaps`: the device-plugin ConfigMap names `expose` may edit (CNAO's devicePluginConfig can name
    another one); the default name is always included."""
    rules = []
    for groups, resources, verbs, names, _why in ADMIN_RULES:
        rule: dict[str, Any] = {"apiGroups": groups, "resources": resources, "verbs": verbs}
        if names == [dpconfig.CONFIGMAP_NAME]:
            rule["resourceNames"] = [names[0], *sorted(set(configmaps or []) - {names[0]})]
        elif names:
            rule["resourceNames"] = names
        rules.append(rule)
    return {
        "apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRole",
        "metadata": {"name": name, "labels": {"app.kubernetes.io/part-of": "macvtapctl"},
                     "annotations": {"macvtapctl.io/purpose":
                                     "run macvtapctl admin commands (enable, expose, nad, setup, vm)"}},
        "rules": rules,
    }


def binding(role: str, subject_kind: str, subject: str, namespace: str | None = None) -> dict[str, Any]:
    subj: dict[str, Any] = {"kind": subject_kind, "name": subject}
    if subject_kind == "ServiceAccount":
        subj["namespace"] = namespace or "default"
    else:
        subj["apiGroup"] = "rbac.authorization.k8s.io"
    return {
        "apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRoleBinding",
        "metadata": {"name": role, "labels": {"app.kubernetes.io/part-of": "macvtapctl"}},
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": role},
        "subjects": [subj],
    }
