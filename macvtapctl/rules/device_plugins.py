"""Which DaemonSets serve macvtap in a cluster (the agent, upstream macvtap-cni, CNAO's copy of it), which
device-plugin ConfigMap each reads, and where two of them run on one node. Pure: plain dicts in, no I/O.

One judge for install (refuse, or take over), status and doctor: two device plugins registering the same
resource names on one kubelet fight over it (the last to register wins, until the other restarts), and two
writers of `<cni-bin>/macvtap` replace each other's binary.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from macvtapctl import identity
from macvtapctl.dig import dig
from macvtapctl.rules import dpconfig

AGENT = "macvtapctl"
UPSTREAM = "macvtap-cni"
# Upstream's device plugin binary (templates/macvtap.yaml.in runs /macvtap-deviceplugin) and image name.
UPSTREAM_COMMAND = "macvtap-deviceplugin"
UPSTREAM_IMAGE = "macvtap-cni"


@dataclass(frozen=True)
class Plugin:
    kind: str  # AGENT or UPSTREAM
    namespace: str
    name: str
    configmap: str | None  # the device-plugin ConfigMap it reads (in its own namespace); None: none found
    cnao: str | None  # the NetworkAddonsConfig that owns it (CNAO deployed it), else None

    @property
    def label(self) -> str:
        return f"DaemonSet {self.namespace}/{self.name}"

    @property
    def configmap_label(self) -> str:
        return f"ConfigMap {self.namespace}/{self.configmap}" if self.configmap else "no ConfigMap"

    def describe(self) -> str:
        """'DaemonSet ns/name (macvtap-cni, deployed by CNAO, reads ConfigMap ns/cm)'."""
        by = f", deployed by CNAO's NetworkAddonsConfig {self.cnao}" if self.cnao else ""
        return f"{self.label} ({self.kind}{by}, reads {self.configmap_label})"


def _upstream_configmap(containers: list[dict[str, Any]]) -> str | None:
    """Upstream reads DP_MACVTAP_CONF from its environment: envFrom a ConfigMap, or one key of it."""
    for c in containers:
        for e in c.get("env") or []:
            if e.get("name") == dpconfig.CONFIG_KEY and dig(e, "valueFrom", "configMapKeyRef", "name"):
                return str(dig(e, "valueFrom", "configMapKeyRef", "name"))
        for e in c.get("envFrom") or []:
            if dig(e, "configMapRef", "name"):
                return str(dig(e, "configMapRef", "name"))
    return None


def _is_upstream(container: dict[str, Any]) -> bool:
    words = [*(container.get("command") or []), *(container.get("args") or [])]
    if any(str(w).rsplit("/", 1)[-1] == UPSTREAM_COMMAND for w in words):
        return True
    image = str(container.get("image") or "").split("@", 1)[0]
    repo = image.rsplit(":", 1)[0] if ":" in image.rsplit("/", 1)[-1] else image
    return repo.rsplit("/", 1)[-1] == UPSTREAM_IMAGE


def of(ds: dict[str, Any]) -> Plugin | None:
    """The plugin a DaemonSet is, or None when it is not a macvtap device plugin."""
    meta = ds.get("metadata") or {}
    spec = dig(ds, "spec", "template", "spec") or {}
    owner = next((o for o in meta.get("ownerReferences") or [] if o.get("kind") == "NetworkAddonsConfig"), None)
    cnao = str(owner.get("name")) if owner else None
    if (meta.get("labels") or {}).get(identity.NAME_LABEL) == identity.AGENT_NAME:
        cm = next((dig(v, "configMap", "name") for v in spec.get("volumes") or [] if dig(v, "configMap", "name")),
                  None)
        return Plugin(AGENT, meta["namespace"], meta["name"], cm, cnao)
    containers = spec.get("containers") or []
    if any(_is_upstream(c) for c in containers):
        return Plugin(UPSTREAM, meta["namespace"], meta["name"], _upstream_configmap(containers), cnao)
    return None


def find(daemonsets: Iterable[dict[str, Any]]) -> list[tuple[Plugin, dict[str, Any]]]:
    """Every macvtap device-plugin DaemonSet, with its object, sorted by namespace and name."""
    found = [(p, ds) for ds in daemonsets if (p := of(ds)) is not None]
    return sorted(found, key=lambda t: (t[0].namespace, t[0].name))


def others(found: Iterable[tuple[Plugin, dict[str, Any]]]) -> list[tuple[Plugin, dict[str, Any]]]:
    """The ones that are not our agent."""
    return [(p, ds) for p, ds in found if p.kind != AGENT]


def _owner(pod: dict[str, Any]) -> tuple[str, str] | None:
    ref = next((o for o in dig(pod, "metadata", "ownerReferences") or [] if o.get("kind") == "DaemonSet"), None)
    return (str(dig(pod, "metadata", "namespace")), str(ref.get("name"))) if ref else None


def shared_nodes(plugins: Iterable[Plugin], pods: Iterable[dict[str, Any]]) -> dict[str, list[Plugin]]:
    """node -> the plugins with a pod on it, for the nodes where more than one runs."""
    by_ref = {(p.namespace, p.name): p for p in plugins}
    on: dict[str, list[Plugin]] = {}
    for pod in pods:
        ref, node = _owner(pod), dig(pod, "spec", "nodeName")
        live = dig(pod, "status", "phase") not in ("Succeeded", "Failed")
        if ref in by_ref and node and live and by_ref[ref] not in on.setdefault(str(node), []):
            on[str(node)].append(by_ref[ref])
    return {n: ps for n, ps in sorted(on.items()) if len(ps) > 1}


def nodes_of(plugin: Plugin, pods: Iterable[dict[str, Any]]) -> list[str]:
    """The nodes where this plugin has a pod that is not finished."""
    return sorted({str(dig(pod, "spec", "nodeName")) for pod in pods if _owner(pod) == (plugin.namespace, plugin.name)
                   and dig(pod, "spec", "nodeName") and dig(pod, "status", "phase") not in ("Succeeded", "Failed")})


def readers(plugins: Iterable[Plugin], namespace: str, configmap: str) -> list[Plugin]:
    """The plugins reading this ConfigMap."""
    return [p for p in plugins if p.namespace == namespace and p.configmap == configmap]


def last_written(configmap: dict[str, Any]) -> str:
    """When the ConfigMap was last written (its newest managedFields time; "" when unknown)."""
    return max((m.get("time") or "" for m in dig(configmap, "metadata", "managedFields") or []), default="")


def started_before(configmap: dict[str, Any], pods: Iterable[dict[str, Any]]) -> list[dict[str, Any]]:
    """The pods that started before the ConfigMap's last write: a macvtap-cni pod among them serves an older
    configuration (it reads its ConfigMap only at start)."""
    written = last_written(configmap)
    return [p for p in pods if written and str(dig(p, "status", "startTime") or "")
            and str(dig(p, "status", "startTime")) < written]


def cni_bin_dir_of(ds: dict[str, Any]) -> str | None:
    """The host directory macvtap-cni installs its CNI binary into (the hostPath its containers mount at a
    .../cni/bin path: templates/macvtap.yaml.in's install-cni init container), or None."""
    spec = dig(ds, "spec", "template", "spec") or {}
    host = {v.get("name"): dig(v, "hostPath", "path") for v in spec.get("volumes") or [] if dig(v, "hostPath", "path")}
    for c in [*(spec.get("initContainers") or []), *(spec.get("containers") or [])]:
        for m in c.get("volumeMounts") or []:
            if str(m.get("mountPath", "")).rstrip("/").endswith("cni/bin") and host.get(m.get("name")):
                return str(host[m.get("name")])
    return None
