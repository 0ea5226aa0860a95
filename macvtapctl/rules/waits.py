"""The conditions the waits evaluate on what their watches hold (kube/follow.until): an agent or a device plugin
serving its nodes (install --wait, expose --wait, --take-over), a DaemonSet and its pods gone (--take-over), an
upstream macvtap-cni rolled out again (--restore-upstream), the agent's uninstall mode run on every node
(uninstall), the kubelet connected to upstream's plugin wherever the agent serves (--restore-upstream). Pure:
plain dicts in, no I/O."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from macvtapctl import identity
from macvtapctl.dig import dig
from macvtapctl.rules import device_plugins
from macvtapctl.rules.daemonset import not_rolled_out, pull_failures, rollout


@dataclass
class Goal:
    """What a readiness wait waits for: DaemonSet `namespace`/`daemonset` rolled out, and every node it runs on
    advertising each `wanted` resource and no longer advertising any `gone` one."""

    namespace: str
    wanted: list[str]
    gone: list[str] = field(default_factory=list)
    daemonset: str = identity.AGENT_NAME
    done: str = "macvtapctl agent is ready on every selected node"

    @property
    def what(self) -> str:
        """What a timeout says it waited for."""
        return "the agent" if self.daemonset == identity.AGENT_NAME else self.daemonset


@dataclass
class Readiness:
    ok: bool
    summary: str
    lagging: list[str]
    advertising: int  # scheduled nodes advertising every wanted resource
    scheduled: int  # nodes the DaemonSet runs on


def readiness_of(ds: dict[str, Any], pods: list[dict[str, Any]], all_nodes: list[dict[str, Any]],
                 wanted: list[str], namespace: str, *, gone: list[str] | None = None,
                 name: str = identity.AGENT_NAME) -> Readiness:
    """How far `ds` (with its `pods`) is from serving: rolled out, and the nodes it runs on advertising."""
    _, desired, ready, updated = rollout(ds)
    # Only the nodes the DaemonSet runs on (taints, selectors and affinity decide that, not us): a node it is not
    # scheduled on will never advertise, and must not make --wait time out.
    scheduled = {p["spec"]["nodeName"] for p in pods if (p.get("spec") or {}).get("nodeName")}
    nodes = [n for n in all_nodes if n["metadata"]["name"] in scheduled]
    lagging = []
    for node in nodes:
        alloc = (node.get("status") or {}).get("allocatable") or {}
        # Present is not enough: the kubelet can publish a resource at 0 between the plugin's registration and
        # its first device list (node status is written every 10 s), and a VM cannot schedule on 0.
        missing = [r for r in wanted if str(alloc.get(r, "0")) in ("0", "")]
        # Withdrawn: allocatable 0 (the kubelet keeps the capacity of a plugin that went for 5 minutes).
        left = [r for r in gone or [] if str(alloc.get(r, "0")) not in ("0", "")]
        why = ([f"not advertising {', '.join(missing)}"] if missing else []) + (
            [f"still advertising {', '.join(left)}"] if left else [])
        if why:
            lagging.append(f"{node['metadata']['name']} ({'; '.join(why)})")
    advertising = len(nodes) - len(lagging)
    problem = not_rolled_out(ds)
    summary = (f"{'agent' if name == identity.AGENT_NAME else name} ready on {ready}/{desired} node(s), {updated} "
               f"updated; {advertising}/{len(nodes)} node(s) advertise {len(wanted)} resource(s)"
               + (f" and withdrew {len(gone)}" if gone else ""))
    if problem:
        lagging[:0] = [f"DaemonSet {namespace}/{name}: {problem}", *pull_failures(pods)]
    return Readiness(problem is None and not lagging, summary, lagging, advertising, len(nodes))


def selector_of(ds: dict[str, Any]) -> str:
    """The DaemonSet's matchLabels as a label selector ("" when it has none: then no pod is its)."""
    labels = dig(ds, "spec", "selector", "matchLabels") or {}
    return ",".join(f"{k}={v}" for k, v in sorted(labels.items()))


@dataclass(frozen=True)
class Left:
    """What is left of a DaemonSet being removed."""

    daemonset: bool  # the DaemonSet itself still exists
    pods: int  # pods it owns still there


def left_of(ds: dict[str, Any] | None, pods: Iterable[dict[str, Any]], name: str) -> Left | None:
    """What of DaemonSet `name` is still there (None: nothing). Its pods are those it owns: a selector can match
    another DaemonSet's."""
    owned = sum(1 for q in pods if owned_by(q, name))
    return None if ds is None and not owned else Left(ds is not None, owned)


def owned_by(pod: dict[str, Any], daemonset: str) -> bool:
    """The pod is DaemonSet `daemonset`'s (of its namespace)."""
    return any(o.get("kind") == "DaemonSet" and o.get("name") == daemonset
               for o in dig(pod, "metadata", "ownerReferences") or [])


def upstream_rollout(daemonsets: Iterable[dict[str, Any]], namespace: str,
                     name: str | None) -> tuple[device_plugins.Plugin | None, str | None]:
    """The macvtap-cni DaemonSet in `namespace` (named `name`, when known; CNAO names its own) and why it is not
    rolled out (None: it is)."""
    ups = [(p, ds) for p, ds in device_plugins.find(daemonsets) if p.kind == device_plugins.UPSTREAM
           and p.namespace == namespace and (name is None or p.name == name)]
    if not ups:
        return None, "its DaemonSet does not exist yet"
    return ups[0][0], not_rolled_out(ups[0][1])


@dataclass
class HandBack:
    """How far the kubelets are from serving from upstream's plugin: what the agent may leave."""

    ok: bool
    summary: str
    lagging: list[str]  # "node (for which resources, or why its report could not be read)"
    unverified: list[str]  # nodes whose agent does not report its kubelet's plugins (older than this check)
    uncovered: list[str]  # nodes the agent runs on and macvtap-cni does not: nothing to wait for there
    checked: int  # nodes waited for


def handed_back(reports: Mapping[str, dict[str, Any] | str], upstream_nodes: Iterable[str]) -> HandBack:
    """Whether every node the agent runs on (`reports`: node -> its agent's report, or why it could not be read)
    and macvtap-cni runs on too has its kubelet connected to another macvtap plugin (upstream's) for every
    resource the agent advertises there (the report's `plugins`, agent/daemon.py). Rolled out is not registered:
    macvtap-cni registers seconds after it starts, and a kubelet whose last plugin for a resource goes marks its
    devices unhealthy — a pod admitted then fails for good (UnexpectedAdmissionError)."""
    covered = set(upstream_nodes)
    uncovered = sorted(n for n in reports if n not in covered)
    reports = {n: r for n, r in reports.items() if n in covered}
    lagging, unverified = [], []
    for node, report in sorted(reports.items()):
        if isinstance(report, str):
            lagging.append(f"{node} ({report})")
            continue
        plugins = report.get("plugins")
        if not isinstance(plugins, dict):
            unverified.append(node)
            continue
        alone = sorted(r for r, p in plugins.items() if p.get("advertised") and not p.get("others"))
        if alone:
            lagging.append(f"{node} (for {', '.join(alone)})")
    checked = len(reports) - len(unverified)
    return HandBack(not lagging, f"registered with the kubelet on {checked - len(lagging)}/{checked} node(s)",
                    lagging, unverified, uncovered, checked)


def cleaned(ds: dict[str, Any]) -> int | None:
    """The nodes the agent's uninstall mode ran on, once every pod of its current template is ready (it reports
    ready when its node is clean); None before."""
    observed, desired, ready, updated = rollout(ds)
    return desired if observed and ready == updated == desired else None


def deployment_rollout(dep: dict[str, Any] | None) -> str | None:
    """kubectl rollout status's judgement of a Deployment (polymorphichelpers' DeploymentStatusViewer): None once
    every replica is updated and available, else what it still waits for."""
    if dep is None:
        return "the Deployment is not there"
    status = dep.get("status") or {}
    if (status.get("observedGeneration") or 0) < (dig(dep, "metadata", "generation") or 0):
        return "waiting for the Deployment's spec to be observed"
    for cond in status.get("conditions") or []:
        if cond.get("type") == "Progressing" and cond.get("reason") == "ProgressDeadlineExceeded":
            return f"it exceeded its progress deadline: {cond.get('message', '')}"
    want = dig(dep, "spec", "replicas")
    want = 1 if want is None else int(want)
    updated = int(status.get("updatedReplicas") or 0)
    if updated < want:
        return f"{updated} of {want} new replicas have been updated"
    if int(status.get("replicas") or 0) > updated:
        return f"{int(status['replicas']) - updated} old replicas are pending termination"
    available = int(status.get("availableReplicas") or 0)
    if available < updated:
        return f"{available} of {updated} updated replicas are available"
    return None
