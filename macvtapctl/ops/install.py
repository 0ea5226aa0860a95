"""`install`: deploy the node agent into a cluster (server-side applied with no-op detection), and the readiness
rule its --wait (and expose --wait) applies, on watches. --via cnao: ops/cnao.py; uninstall: ops/uninstall.py.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any, Protocol

from macvtapctl import identity, validate
from macvtapctl.errors import TimeoutExceeded
from macvtapctl.kube import dpconfigmap
from macvtapctl.kube import resources as r
from macvtapctl.kube.client import Kube
from macvtapctl.kube.errors import AlreadyExistsError
from macvtapctl.kube.follow import Follow, Mirror
from macvtapctl.kube.options import DryRun
from macvtapctl.kube.resources import DAEMONSET, NAMESPACE, NODE, POD
from macvtapctl.manifests import agent as agentm
from macvtapctl.ops import Reporter
from macvtapctl.output import resource_label
from macvtapctl.rules import applied, dpconfig
from macvtapctl.rules.daemonset import not_rolled_out, pull_failures, rollout


def _resource_of(obj: dict[str, Any]) -> Any:

    return {"Namespace": r.NAMESPACE, "ServiceAccount": r.SERVICE_ACCOUNT, "ConfigMap": r.CONFIGMAP,
            "Role": r.ROLE, "RoleBinding": r.ROLE_BINDING,
            "DaemonSet": r.DAEMONSET, "NetworkAddonsConfig": r.NETWORK_ADDONS_CONFIG,
            # install --injector's (ops/injector.py)
            "ClusterRole": r.CLUSTER_ROLE, "ClusterRoleBinding": r.CLUSTER_ROLE_BINDING, "Secret": r.SECRET,
            "Service": r.SERVICE, "Deployment": r.DEPLOYMENT, "PodDisruptionBudget": r.POD_DISRUPTION_BUDGET,
            "MutatingWebhookConfiguration": r.MUTATING_WEBHOOK_CONFIGURATION}[obj["kind"]]


def apply_all(kube: Kube, report: Reporter, mode: DryRun, objs: list[dict[str, Any]],
               namespace: str) -> list[dict[str, Any]]:

    if mode is DryRun.SERVER and kube.get_or_none(NAMESPACE, namespace) is None:
        # A server dry run cannot create objects inside a namespace it did not really create: validate the
        # namespaced objects in "default" instead (schemas and field validation do not depend on it).
        report.warn(f"namespace {namespace} does not exist yet: its objects are validated in namespace default")
        results = [_apply(kube, report, mode, objs[0])]
        for obj in objs[1:]:
            probe = {**obj, "metadata": {**obj["metadata"], "namespace": "default"}}
            kube.apply(_resource_of(obj), probe, "default", dry_run=DryRun.SERVER)
            report.status(resource_label(obj), "created", mode.suffix)
            results.append(obj)
        return results
    return [_apply(kube, report, mode, obj) for obj in objs]


def _apply(kube: Kube, report: Reporter, mode: DryRun, obj: dict[str, Any]) -> dict[str, Any]:
    """Server-side apply, but write nothing when nothing would change (a server dry run tells)."""
    res = _resource_of(obj)
    ns = obj["metadata"].get("namespace")
    name = obj["metadata"]["name"]
    existing = kube.get_or_none(res, name, ns)
    if obj["kind"] == "ConfigMap":
        if existing is not None:  # the user's entries are never touched
            report.status(resource_label(obj), "unchanged", mode.suffix)
            return dict(existing)

        try:
            result: dict[str, Any] = kube.create(res, obj, ns, dry_run=mode)
        except AlreadyExistsError:  # created by `expose` or another install since we looked: theirs, untouched
            report.status(resource_label(obj), "unchanged", mode.suffix)
            return dict(kube.get(res, name, ns))
        report.status(resource_label(obj), "created", mode.suffix)
        return result
    preview: dict[str, Any] = kube.apply(res, obj, ns, dry_run=DryRun.SERVER)
    if existing is not None and applied.unchanged(existing, preview):
        report.status(resource_label(obj), "unchanged", mode.suffix)
        return dict(existing)
    result = preview if mode is DryRun.SERVER else kube.apply(res, obj, ns)
    report.status(resource_label(obj), "created" if existing is None else "configured", mode.suffix)
    return result


@dataclass
class Readiness:
    ok: bool
    summary: str
    lagging: list[str]
    advertising: int  # scheduled nodes advertising every wanted resource
    scheduled: int  # nodes the DaemonSet runs on


def wanted_resources(kube: Kube, opts: agentm.InstallOptions) -> list[str]:
    """The resources the configuration can serve (an entry that can never be served is never waited for)."""

    target = dpconfigmap.locate(kube, opts.namespace, opts.configmap)
    cfg = target.config() if target.object is not None else None
    return [] if cfg is None or cfg.expose_all else [
        validate.full_resource_name(e.name) for e in dpconfig.usable_entries(cfg)[0]]


@dataclass
class Goal:
    """What a wait waits for: DaemonSet `namespace`/`daemonset` rolled out, and every node it runs on advertising
    each `wanted` resource and no longer advertising any `gone` one."""

    namespace: str
    wanted: list[str]
    gone: list[str] = field(default_factory=list)
    daemonset: str = identity.AGENT_NAME
    done: str = "macvtapctl agent is ready on every selected node"


def readiness_of(ds: dict[str, Any], pods: list[dict[str, Any]], all_nodes: list[dict[str, Any]],
                 wanted: list[str], namespace: str, *, gone: list[str] | None = None,
                 name: str = identity.AGENT_NAME) -> Readiness:
    """The rule, on objects already read."""
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


class NodeProgress(Protocol):
    """A display of nodes ready / total (the CLI's bar on a terminal)."""

    def update(self, done: int, total: int) -> None: ...

    def close(self) -> None: ...


def wait_ready(kube: Kube, report: Reporter, opts: agentm.InstallOptions, limit: float,
               progress: NodeProgress | None = None) -> None:
    """install --wait: the agent rolled out, every node it runs on advertising what the ConfigMap exposes."""
    wait_for_goal(kube, report, Goal(opts.namespace, wanted_resources(kube, opts)), limit, progress)


def wait_for_goal(kube: Kube, report: Reporter, goal: Goal, limit: float,
                  progress: NodeProgress | None = None) -> None:
    """Wait for readiness_of() on watches: one LIST per kind (the DaemonSet, its pods, the nodes), then a WATCH
    from that version; the rule is evaluated again on every change, never by polling. Summary lines when it
    changes, and `progress` with the nodes advertising / scheduled."""

    deadline = time.monotonic() + limit
    ds0 = kube.get_or_none(DAEMONSET, goal.daemonset, goal.namespace) or {}
    labels = ((ds0.get("spec") or {}).get("selector") or {}).get("matchLabels") or {}
    pod_selector = ",".join(f"{k}={v}" for k, v in sorted(labels.items()))
    mirror = Mirror(("ds", "pods", "nodes"))
    follows = [Follow(kube, mirror, "ds", DAEMONSET, goal.namespace, field_selector=f"metadata.name={goal.daemonset}"),
               Follow(kube, mirror, "nodes", NODE, None)]
    if pod_selector:
        follows.append(Follow(kube, mirror, "pods", POD, goal.namespace, label_selector=pod_selector))
    else:  # no selector: no pods to read (and a DaemonSet that is not ours)
        mirror.listed.add("pods")
    for f in follows:
        f.start()
    last, said_at = "", 0.0
    try:
        while True:
            mirror.take(max(0.0, deadline - time.monotonic()))
            lagging = ["the first reads of the DaemonSet, its pods and the nodes did not finish"]
            if mirror.complete():
                r = readiness_of(next(iter(mirror.caches["ds"].values()), {}), list(mirror.caches["pods"].values()),
                                 list(mirror.caches["nodes"].values()), goal.wanted, goal.namespace, gone=goal.gone,
                                 name=goal.daemonset)
                if progress is not None:
                    progress.update(r.advertising, r.scheduled)
                # A line per change, at most one a second (500 nodes would be 500 lines in a CI log); the last
                # state always.
                if r.summary != last and (r.ok or time.monotonic() - said_at >= 1.0):
                    report.info(f"waiting: {r.summary}")
                    last, said_at = r.summary, time.monotonic()
                if r.ok:
                    report.info(goal.done)
                    return
                lagging = r.lagging
            if time.monotonic() >= deadline:
                raise TimeoutExceeded(f"timed out after {limit:g}s waiting for "
                                      f"{'the agent' if goal.daemonset == identity.AGENT_NAME else goal.daemonset}; "
                                      f"lagging: {'; '.join(lagging)}")
    finally:
        for f in follows:
            f.stop()
        if progress is not None:
            progress.close()
