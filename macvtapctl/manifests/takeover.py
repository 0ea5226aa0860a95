"""The take-over record (pure): what `install --take-over` replaced, kept beside the agent so that
`uninstall --restore-upstream` can put it back exactly — upstream's DaemonSet as it was, or CNAO's macvtap spec."""

from __future__ import annotations

import json
from typing import Any

RECORD_NAME = "macvtapctl-takeover"
RECORD_LABELS = {"app.kubernetes.io/part-of": "macvtapctl", "app.kubernetes.io/component": "takeover-record"}
RECORD_SELECTOR = ",".join(f"{k}={v}" for k, v in sorted(RECORD_LABELS.items()))
DAEMONSET_KEY = "daemonset.json"
CNAO_KEY = "networkaddonsconfig.json"
CONFIGMAP_KEY = "configMap"
# Written by the API server and controllers: a restored object gets its own.
_SERVER_ANNOTATIONS = ("deprecated.daemonset.template.generation",)


def restorable_daemonset(ds: dict[str, Any]) -> dict[str, Any]:
    """The DaemonSet as its owner wrote it: name, namespace, labels, annotations and spec; no status, no server
    fields (uid, resourceVersion, managedFields), no CNAO owner (CNAO recreates its own)."""
    meta = ds.get("metadata") or {}
    annotations = {k: v for k, v in (meta.get("annotations") or {}).items() if k not in _SERVER_ANNOTATIONS}
    out_meta: dict[str, Any] = {"name": meta["name"], "namespace": meta["namespace"]}
    if meta.get("labels"):
        out_meta["labels"] = dict(meta["labels"])
    if annotations:
        out_meta["annotations"] = annotations
    spec = dict(ds.get("spec") or {})
    return {"apiVersion": "apps/v1", "kind": "DaemonSet", "metadata": out_meta, "spec": spec}


def record(namespace: str, configmap: str, *, daemonset: dict[str, Any] | None = None,
           cnao: tuple[str, dict[str, Any]] | None = None) -> dict[str, Any]:
    """`daemonset`: upstream's, to create again; `cnao`: (NetworkAddonsConfig name, its spec.macvtap)."""
    data = {CONFIGMAP_KEY: configmap}
    if cnao is not None:
        data[CNAO_KEY] = json.dumps({"name": cnao[0], "spec": {"macvtap": cnao[1]}}, sort_keys=True)
    elif daemonset is not None:
        data[DAEMONSET_KEY] = json.dumps(restorable_daemonset(daemonset), sort_keys=True)
    return {"apiVersion": "v1", "kind": "ConfigMap",
            "metadata": {"name": RECORD_NAME, "namespace": namespace, "labels": dict(RECORD_LABELS)},
            "data": data}


def saved_daemonset(rec: dict[str, Any]) -> dict[str, Any] | None:
    raw = (rec.get("data") or {}).get(DAEMONSET_KEY)
    return json.loads(raw) if raw else None


def saved_cnao(rec: dict[str, Any]) -> tuple[str, dict[str, Any]] | None:
    """(NetworkAddonsConfig name, the spec.macvtap it had)."""
    raw = (rec.get("data") or {}).get(CNAO_KEY)
    if not raw:
        return None
    doc = json.loads(raw)
    return str(doc["name"]), dict(doc["spec"]["macvtap"])


def configmap_of(rec: dict[str, Any]) -> str | None:
    value = (rec.get("data") or {}).get(CONFIGMAP_KEY)
    return str(value) if value else None
