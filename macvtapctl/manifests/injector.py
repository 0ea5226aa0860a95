"""install --injector's objects (pure): network-resources-injector v1.9.0 (NRI) in the agent's namespace, with the
least it needs, and the MutatingWebhookConfiguration that sends it the pods that ask for networks.

Why each choice (docs/install.md, "install --injector"):
- RBAC: NRI reads NADs in every namespace (an informer: list, watch; get when its cache misses) and the ConfigMap
  `nri-control-switches` in its own namespace; upstream's `*` on pods, workloads, Secrets, Services and webhook
  configurations is for its installer, which macvtapctl replaces (it writes those objects itself).
- `-insecure`: without it NRI refuses callers without a client certificate, and the API server presents one to a
  webhook only when its admission configuration says so: on almost every cluster every call would fail.
- failurePolicy Fail, scoped by matchConditions to pods that carry a networks annotation (and never kube-system or
  this namespace): a VM pod admitted without its device request schedules anywhere and fails in the CNI
  (`deviceID is required`); a refused pod says why at once.
- The certificate: a CA of its own and a serving certificate for the Service (ops/injector.py makes them), in a
  Secret that NRI re-reads when it changes; the CA's key is not kept.
"""

from __future__ import annotations

import base64
from dataclasses import dataclass
from typing import Any

from macvtapctl import identity
from macvtapctl.manifests import agent as agentm
from macvtapctl.rules import injector as rules

NRI_VERSION = "v1.9.0"
DEFAULT_IMAGE = f"ghcr.io/k8snetworkplumbingwg/network-resources-injector:{NRI_VERSION}"
NAME = "macvtapctl-injector"  # every object's name, and the webhook configuration's
SECRET_NAME = f"{NAME}-tls"
WEBHOOK_NAME = "network-resources-injector.macvtapctl.io"
LABELS = {identity.NAME_LABEL: NAME, "app.kubernetes.io/part-of": "macvtapctl",
          "app.kubernetes.io/component": "network-resources-injector"}
PORT, HEALTH_PORT = 8443, 8444  # NRI's defaults (cmd/webhook/main.go)
CONTROL_SWITCHES = "nri-control-switches"  # the ConfigMap NRI reads every 30 s in its namespace
CERT_DIR = "/etc/tls"
REPLICAS = 2  # with failurePolicy Fail one replica down must not stop VM pods (upstream runs 2, PDB minAvailable 1)
# Which pods are sent to it: those that name networks (NRI mutates nothing else). CEL on the object, since an
# objectSelector sees labels only.
MATCH = (f"has(object.metadata.annotations) && ('{rules.NETWORKS_ANNOTATION}' in object.metadata.annotations || "
         f"'{rules.DEFAULT_NETWORK_ANNOTATION}' in object.metadata.annotations)")


@dataclass(frozen=True)
class Certs:
    """PEM: the CA (its certificate only) and the serving certificate and key for the Service."""

    ca: bytes
    cert: bytes
    key: bytes


@dataclass(frozen=True)
class InjectorOptions:
    namespace: str = identity.DEFAULT_NAMESPACE
    image: str = DEFAULT_IMAGE


def service_hosts(namespace: str) -> list[str]:
    """The names the API server may call the Service by: the serving certificate's SANs."""
    return [f"{NAME}.{namespace}.svc", f"{NAME}.{namespace}", NAME]


def _meta(name: str, namespace: str | None = None) -> dict[str, Any]:
    md: dict[str, Any] = {"name": name, "labels": dict(LABELS)}
    if namespace:
        md["namespace"] = namespace
    return md


def service_account(opts: InjectorOptions) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "ServiceAccount", "metadata": _meta(NAME, opts.namespace),
            "automountServiceAccountToken": False}


def cluster_role() -> dict[str, Any]:
    return {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRole", "metadata": _meta(NAME),
            "rules": [{"apiGroups": ["k8s.cni.cncf.io"], "resources": ["network-attachment-definitions"],
                       "verbs": ["get", "list", "watch"]}]}


def cluster_role_binding(opts: InjectorOptions) -> dict[str, Any]:
    return {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRoleBinding", "metadata": _meta(NAME),
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": NAME},
            "subjects": [{"kind": "ServiceAccount", "name": NAME, "namespace": opts.namespace}]}


def role(opts: InjectorOptions) -> dict[str, Any]:
    """Its control switches, by name (without it NRI logs a refusal every 30 s)."""
    return {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "Role", "metadata": _meta(NAME, opts.namespace),
            "rules": [{"apiGroups": [""], "resources": ["configmaps"], "resourceNames": [CONTROL_SWITCHES],
                       "verbs": ["get"]}]}


def role_binding(opts: InjectorOptions) -> dict[str, Any]:
    return {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "RoleBinding",
            "metadata": _meta(NAME, opts.namespace),
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": NAME},
            "subjects": [{"kind": "ServiceAccount", "name": NAME, "namespace": opts.namespace}]}


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def secret(opts: InjectorOptions, certs: Certs) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "Secret", "metadata": _meta(SECRET_NAME, opts.namespace),
            "type": "kubernetes.io/tls",
            "data": {"ca.crt": _b64(certs.ca), "tls.crt": _b64(certs.cert), "tls.key": _b64(certs.key)}}


def service(opts: InjectorOptions) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "Service", "metadata": _meta(NAME, opts.namespace),
            "spec": {"selector": dict(LABELS), "ports": [{"name": "https", "port": 443, "targetPort": PORT,
                                                          "protocol": "TCP"}]}}


def deployment(opts: InjectorOptions) -> dict[str, Any]:
    args = ["-bind-address=0.0.0.0", f"-port={PORT}", f"-health-check-port={HEALTH_PORT}",
            f"-tls-cert-file={CERT_DIR}/tls.crt", f"-tls-private-key-file={CERT_DIR}/tls.key",
            "-insecure", "-logtostderr"]
    probe = {"httpGet": {"path": "/healthz", "port": HEALTH_PORT}, "periodSeconds": 10}
    container = {
        "name": "webhook", "image": opts.image, "command": ["webhook"], "args": args,
        "env": [{"name": "NAMESPACE", "valueFrom": {"fieldRef": {"fieldPath": "metadata.namespace"}}}],
        "ports": [{"name": "https", "containerPort": PORT, "protocol": "TCP"}],
        "securityContext": {"allowPrivilegeEscalation": False, "readOnlyRootFilesystem": True,
                            "capabilities": {"drop": ["ALL"]}},
        "livenessProbe": probe, "readinessProbe": {**probe, "periodSeconds": 5},
        "resources": {"requests": {"cpu": "50m", "memory": "50Mi"}, "limits": {"memory": "200Mi"}},
        "volumeMounts": [{"name": "tls", "mountPath": CERT_DIR, "readOnly": True},
                         # NRI knows only the in-cluster configuration: the token where client-go looks for it.
                         {"name": "api-token", "mountPath": identity.SERVICE_ACCOUNT_DIR, "readOnly": True}],
    }
    spread = {"weight": 100, "podAffinityTerm": {"topologyKey": "kubernetes.io/hostname",
                                                  "labelSelector": {"matchLabels": dict(LABELS)}}}
    return {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": _meta(NAME, opts.namespace),
            "spec": {"replicas": REPLICAS, "selector": {"matchLabels": dict(LABELS)},
                     "template": {"metadata": {"labels": dict(LABELS)}, "spec": {
                         "serviceAccountName": NAME, "automountServiceAccountToken": False,
                         "securityContext": {"runAsNonRoot": True, "runAsUser": 10000, "runAsGroup": 10000,
                                             # the Secret's and the token's files readable by that group
                                             "fsGroup": 10000, "seccompProfile": {"type": "RuntimeDefault"}},
                         "affinity": {"podAntiAffinity": {
                             "preferredDuringSchedulingIgnoredDuringExecution": [spread]}},
                         "containers": [container],
                         "volumes": [{"name": "tls", "secret": {"secretName": SECRET_NAME, "defaultMode": 0o440}},
                                     agentm.api_token_volume()]}}}}


def pod_disruption_budget(opts: InjectorOptions) -> dict[str, Any]:
    return {"apiVersion": "policy/v1", "kind": "PodDisruptionBudget", "metadata": _meta(NAME, opts.namespace),
            "spec": {"minAvailable": 1, "selector": {"matchLabels": dict(LABELS)}}}


def webhook_configuration(opts: InjectorOptions, ca: bytes, *, url: str | None = None) -> dict[str, Any]:
    """`url` instead of the Service: a webhook the API server reaches directly (the integration test's)."""
    client: dict[str, Any] = {"caBundle": _b64(ca)}
    if url:
        client["url"] = url
    else:
        client["service"] = {"name": NAME, "namespace": opts.namespace, "path": "/mutate", "port": 443}
    return {"apiVersion": "admissionregistration.k8s.io/v1", "kind": "MutatingWebhookConfiguration",
            "metadata": _meta(NAME),
            "webhooks": [{
                "name": WEBHOOK_NAME, "admissionReviewVersions": ["v1"], "clientConfig": client,
                "rules": [{"operations": ["CREATE"], "apiGroups": [""], "apiVersions": ["v1"],
                           "resources": ["pods"], "scope": "Namespaced"}],
                "failurePolicy": "Fail",
                # None: the API server calls it on dry runs too, which is how install --wait, status and doctor
                # prove it works.
                "sideEffects": "None", "timeoutSeconds": 10,
                # Its own pods and the system's never wait for it (upstream's installer excludes the same).
                "namespaceSelector": {"matchExpressions": [{"key": "kubernetes.io/metadata.name",
                                                            "operator": "NotIn",
                                                            "values": sorted({"kube-system", opts.namespace})}]},
                "matchConditions": [{"name": "asks-for-networks", "expression": MATCH}]}]}


def objects(opts: InjectorOptions, certs: Certs) -> list[dict[str, Any]]:
    """In apply order: the webhook configuration last, once what it calls exists."""
    return [service_account(opts), cluster_role(), cluster_role_binding(opts), role(opts), role_binding(opts),
            secret(opts, certs), service(opts), deployment(opts), pod_disruption_budget(opts),
            webhook_configuration(opts, certs.ca)]


def redacted(objs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """What may be printed: the serving key never is (a Secret's tls.key is left out)."""
    return [{**obj, "data": {k: v for k, v in obj["data"].items() if k != "tls.key"}}
            if obj.get("kind") == "Secret" and "tls.key" in (obj.get("data") or {}) else obj for obj in objs]
