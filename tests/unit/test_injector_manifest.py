"""install --injector's objects (manifests/injector.py) and their certificate (ops/injector.py): least privilege,
the webhook's scope, the key never printed, the certificate kept while it is good."""

from __future__ import annotations

import base64
from typing import Any

from macvtapctl.manifests import injector as m
from macvtapctl.ops import injector as ops

OPTS = m.InjectorOptions(namespace="macvtap")
CERTS = ops.new_certs("macvtap")


def by_kind(objs: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    return {o["kind"]: o for o in objs}


def test_objects_in_apply_order_with_the_webhook_last() -> None:
    kinds = [o["kind"] for o in m.objects(OPTS, CERTS)]
    assert kinds == ["ServiceAccount", "ClusterRole", "ClusterRoleBinding", "Role", "RoleBinding", "Secret",
                     "Service", "Deployment", "PodDisruptionBudget", "MutatingWebhookConfiguration"]


def test_rbac_reads_nads_and_its_control_switches_only() -> None:
    objs = by_kind(m.objects(OPTS, CERTS))
    assert objs["ClusterRole"]["rules"] == [{"apiGroups": ["k8s.cni.cncf.io"],
                                             "resources": ["network-attachment-definitions"],
                                             "verbs": ["get", "list", "watch"]}]
    assert objs["Role"]["rules"] == [{"apiGroups": [""], "resources": ["configmaps"],
                                      "resourceNames": ["nri-control-switches"], "verbs": ["get"]}]


def test_deployment_runs_nri_with_its_flags_unprivileged() -> None:
    d = by_kind(m.objects(m.InjectorOptions(namespace="macvtap", image="registry.example/nri:v1.9.0"), CERTS))[
        "Deployment"]
    spec = d["spec"]["template"]["spec"]
    [c] = spec["containers"]
    assert c["image"] == "registry.example/nri:v1.9.0" and c["command"] == ["webhook"]
    assert {"-port=8443", "-insecure", "-tls-cert-file=/etc/tls/tls.crt",
            "-tls-private-key-file=/etc/tls/tls.key"} <= set(c["args"])
    assert c["securityContext"]["capabilities"] == {"drop": ["ALL"]}
    assert spec["securityContext"]["runAsNonRoot"] is True
    assert d["spec"]["replicas"] == 2


def test_default_image_is_upstreams_release() -> None:
    assert m.DEFAULT_IMAGE == "ghcr.io/k8snetworkplumbingwg/network-resources-injector:v1.9.0"


def test_webhook_scoped_to_pods_that_ask_for_networks_and_fails_closed() -> None:
    [hook] = m.webhook_configuration(OPTS, CERTS.ca)["webhooks"]
    assert hook["failurePolicy"] == "Fail" and hook["sideEffects"] == "None"
    assert hook["rules"][0]["resources"] == ["pods"] and hook["rules"][0]["operations"] == ["CREATE"]
    assert hook["namespaceSelector"]["matchExpressions"][0]["values"] == ["kube-system", "macvtap"]
    assert "k8s.v1.cni.cncf.io/networks" in hook["matchConditions"][0]["expression"]
    assert base64.b64decode(hook["clientConfig"]["caBundle"]) == CERTS.ca
    assert hook["clientConfig"]["service"] == {"name": m.NAME, "namespace": "macvtap", "path": "/mutate",
                                               "port": 443}


def test_the_private_key_is_never_printed() -> None:
    shown = m.redacted(m.objects(OPTS, CERTS))
    secret = by_kind(shown)["Secret"]
    assert set(secret["data"]) == {"ca.crt", "tls.crt"}
    assert "tls.key" in by_kind(m.objects(OPTS, CERTS))["Secret"]["data"]  # what is applied keeps it


class Secrets:
    """A Kube that knows one Secret."""

    def __init__(self, secret: dict[str, Any] | None) -> None:
        self.secret = secret

    def get_or_none(self, res: Any, name: str, namespace: str | None = None) -> dict[str, Any] | None:
        return self.secret


def test_a_usable_stored_certificate_is_kept_and_a_foreign_one_replaced() -> None:
    stored = m.secret(OPTS, CERTS)
    assert ops.certificates(Secrets(stored), "macvtap") == CERTS  # type: ignore[arg-type]
    assert ops.certificates(Secrets(stored), "elsewhere") != CERTS  # type: ignore[arg-type]  (other SANs)
    broken = {**stored, "data": {**stored["data"], "tls.key": base64.b64encode(b"junk").decode()}}
    assert ops.certificates(Secrets(broken), "macvtap") != CERTS  # type: ignore[arg-type]
    assert ops.usable(CERTS, "macvtap")
