"""`install`: deploy the node agent into a cluster (server-side applied with no-op detection), and its --wait
(ops/wait.py). --via cnao: ops/cnao.py; uninstall: ops/uninstall.py.
"""

from __future__ import annotations

from typing import Any

from macvtapctl import validate
from macvtapctl.kube import dpconfigmap
from macvtapctl.kube import resources as r
from macvtapctl.kube.client import Kube
from macvtapctl.kube.errors import AlreadyExistsError
from macvtapctl.kube.options import DryRun
from macvtapctl.kube.resources import NAMESPACE
from macvtapctl.manifests import agent as agentm
from macvtapctl.ops import Reporter
from macvtapctl.ops.wait import NodeProgress, wait_for_goal
from macvtapctl.output import resource_label
from macvtapctl.rules import applied, dpconfig
from macvtapctl.rules.waits import Goal


def apply_objects(kube: Kube, report: Reporter, dry_run: DryRun, objs: list[dict[str, Any]],
               namespace: str) -> list[dict[str, Any]]:

    if dry_run is DryRun.SERVER and kube.get_or_none(NAMESPACE, namespace) is None:
        # A server dry run cannot create objects inside a namespace it did not really create: validate the
        # namespaced objects in "default" instead (schemas and field validation do not depend on it).
        report.warn(f"namespace {namespace} does not exist yet: its objects are validated in namespace default")
        results = [_apply(kube, report, dry_run, objs[0])]
        for obj in objs[1:]:
            probe = {**obj, "metadata": {**obj["metadata"], "namespace": "default"}}
            kube.apply(r.of(obj), probe, "default", dry_run=DryRun.SERVER)
            report.status(resource_label(obj), "created", dry_run.suffix)
            results.append(obj)
        return results
    return [_apply(kube, report, dry_run, obj) for obj in objs]


def _apply(kube: Kube, report: Reporter, dry_run: DryRun, obj: dict[str, Any]) -> dict[str, Any]:
    """Server-side apply, but write nothing when nothing would change (a server dry run tells)."""
    res = r.of(obj)
    ns = obj["metadata"].get("namespace")
    name = obj["metadata"]["name"]
    existing = kube.get_or_none(res, name, ns)
    if obj["kind"] == "ConfigMap":
        if existing is not None:  # the user's entries are never touched
            report.status(resource_label(obj), "unchanged", dry_run.suffix)
            return dict(existing)

        try:
            result: dict[str, Any] = kube.create(res, obj, ns, dry_run=dry_run)
        except AlreadyExistsError:  # created by `expose` or another install since we looked: theirs, untouched
            report.status(resource_label(obj), "unchanged", dry_run.suffix)
            return dict(kube.get(res, name, ns))
        report.status(resource_label(obj), "created", dry_run.suffix)
        return result
    preview: dict[str, Any] = kube.apply(res, obj, ns, dry_run=DryRun.SERVER)
    if existing is not None and applied.unchanged(existing, preview):
        report.status(resource_label(obj), "unchanged", dry_run.suffix)
        return dict(existing)
    result = preview if dry_run is DryRun.SERVER else kube.apply(res, obj, ns)
    report.status(resource_label(obj), "created" if existing is None else "configured", dry_run.suffix)
    return result


def wanted_resources(kube: Kube, opts: agentm.InstallOptions) -> list[str]:
    """The resources the configuration can serve (an entry that can never be served is never waited for)."""

    target = dpconfigmap.locate(kube, opts.namespace, opts.configmap)
    cfg = target.config() if target.object is not None else None
    return [] if cfg is None or cfg.expose_all else [
        validate.full_resource_name(e.name) for e in dpconfig.usable_entries(cfg)[0]]


def wait_ready(kube: Kube, report: Reporter, opts: agentm.InstallOptions, limit: float,
               progress: NodeProgress | None = None) -> None:
    """install --wait: the agent rolled out, every node it runs on advertising what the ConfigMap exposes."""
    wait_for_goal(kube, report, Goal(opts.namespace, wanted_resources(kube, opts)), limit, progress)
