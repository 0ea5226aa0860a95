"""The API resources macvtapctl touches, and how their URLs are built."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any
from urllib.parse import quote


@dataclass(frozen=True)
class Resource:
    group: str  # "" for the core API
    version: str
    plural: str
    kind: str
    namespaced: bool = True

    @property
    def api_version(self) -> str:
        return f"{self.group}/{self.version}" if self.group else self.version

    @property
    def qualified(self) -> str:
        """`plural.group`, as RBAC messages and kubectl name it."""
        return f"{self.plural}.{self.group}" if self.group else self.plural

    def label(self, name: str) -> str:
        """kubectl's `kind.group/name` for status lines."""
        kind = self.kind.lower()
        return f"{kind}.{self.group}/{name}" if self.group else f"{kind}/{name}"

    def path(self, namespace: str | None = None, name: str | None = None, subresource: str | None = None) -> str:
        base = f"/apis/{self.group}/{self.version}" if self.group else f"/api/{self.version}"
        if self.namespaced and namespace is not None:
            base += f"/namespaces/{quote(namespace, safe='')}"
        base += f"/{self.plural}"
        if name is not None:
            base += f"/{quote(name, safe='')}"
            if subresource:
                base += f"/{subresource}"
        return base


KUBEVIRT = Resource("kubevirt.io", "v1", "kubevirts", "KubeVirt")
VIRTUAL_MACHINE = Resource("kubevirt.io", "v1", "virtualmachines", "VirtualMachine")
VIRTUAL_MACHINE_INSTANCE = Resource("kubevirt.io", "v1", "virtualmachineinstances", "VirtualMachineInstance")
NAD = Resource("k8s.cni.cncf.io", "v1", "network-attachment-definitions", "NetworkAttachmentDefinition")
HYPERCONVERGED = Resource("hco.kubevirt.io", "v1beta1", "hyperconvergeds", "HyperConverged")
NETWORK_ADDONS_CONFIG = Resource(
    "networkaddonsoperator.network.kubevirt.io", "v1", "networkaddonsconfigs", "NetworkAddonsConfig",
    namespaced=False,
)
CONFIGMAP = Resource("", "v1", "configmaps", "ConfigMap")
NAMESPACE = Resource("", "v1", "namespaces", "Namespace", namespaced=False)
NODE = Resource("", "v1", "nodes", "Node", namespaced=False)
POD = Resource("", "v1", "pods", "Pod")
EVENT = Resource("", "v1", "events", "Event")
SERVICE_ACCOUNT = Resource("", "v1", "serviceaccounts", "ServiceAccount")
DAEMONSET = Resource("apps", "v1", "daemonsets", "DaemonSet")
ROLE = Resource("rbac.authorization.k8s.io", "v1", "roles", "Role")
ROLE_BINDING = Resource("rbac.authorization.k8s.io", "v1", "rolebindings", "RoleBinding")
CLUSTER_ROLE = Resource("rbac.authorization.k8s.io", "v1", "clusterroles", "ClusterRole", namespaced=False)
CLUSTER_ROLE_BINDING = Resource(
    "rbac.authorization.k8s.io", "v1", "clusterrolebindings", "ClusterRoleBinding", namespaced=False
)
CRD = Resource("apiextensions.k8s.io", "v1", "customresourcedefinitions", "CustomResourceDefinition",
               namespaced=False)
# install --injector (network-resources-injector)
SECRET = Resource("", "v1", "secrets", "Secret")
SERVICE = Resource("", "v1", "services", "Service")
DEPLOYMENT = Resource("apps", "v1", "deployments", "Deployment")
POD_DISRUPTION_BUDGET = Resource("policy", "v1", "poddisruptionbudgets", "PodDisruptionBudget")
MUTATING_WEBHOOK_CONFIGURATION = Resource("admissionregistration.k8s.io", "v1", "mutatingwebhookconfigurations",
                                          "MutatingWebhookConfiguration", namespaced=False)


# The kinds install and uninstall write (the agent's, CNAO's, the injector's), by an object's kind.
BY_KIND = {r.kind: r for r in (NAMESPACE, SERVICE_ACCOUNT, CONFIGMAP, ROLE, ROLE_BINDING, DAEMONSET,
                               NETWORK_ADDONS_CONFIG, CLUSTER_ROLE, CLUSTER_ROLE_BINDING, SECRET, SERVICE,
                               DEPLOYMENT, POD_DISRUPTION_BUDGET, MUTATING_WEBHOOK_CONFIGURATION)}


def of(obj: dict[str, Any]) -> Resource:
    """The resource of an object install or uninstall writes."""
    return BY_KIND[obj["kind"]]
