"""Expose a host NIC to the device plugin: read-modify-write of the DP ConfigMap (DP_MACVTAP_CONF)."""

from __future__ import annotations

from macvtapctl import validate
from macvtapctl.errors import PreconditionError, UsageError
from macvtapctl.kube import dpconfigmap
from macvtapctl.kube.client import Kube
from macvtapctl.kube.dpconfigmap import Target, Update
from macvtapctl.kube.lookup import daemonset_pods
from macvtapctl.kube.options import DryRun
from macvtapctl.kube.resources import DAEMONSET
from macvtapctl.ops import Reporter
from macvtapctl.ops.wait import NodeProgress, wait_for_goal
from macvtapctl.rules import device_plugins, dpconfig
from macvtapctl.rules.waits import Goal


def entry_for(lower_device: str, name: str | None, mode: str, capacity: int | None) -> dpconfig.Entry:
    validate.check_interface_name(lower_device, "lower device")
    if mode == dpconfig.PASSTHRU:
        if capacity not in (None, 1):
            raise UsageError(f"invalid capacity {capacity}: a passthru macvtap takes the whole of {lower_device}, "
                             "so there is one device per node (--capacity 1)")
        capacity = 1
    capacity = dpconfig.DEFAULT_CAPACITY if capacity is None else capacity
    return dpconfig.Entry(name=name or lower_device, lower_device=lower_device, mode=mode,
                          capacity=capacity).validated()


def expose(kube: Kube, report: Reporter, dry_run: DryRun, entry: dpconfig.Entry | None, *,
           dp_namespace: str | None = None, force: bool = False, restart: bool = False) -> Update:
    """Upsert `entry` (None: write []) through the DP ConfigMap's read-modify-write door. Returns what it did:
    the ConfigMap (its `target`, which --wait follows) and the objects written or found unchanged."""

    def warn(target: Target, cfg: dpconfig.Config) -> None:
        for w in cfg.warnings:
            report.warn(w)

    def mutate(target: Target, cfg: dpconfig.Config) -> dpconfig.Config | None:
        if entry is None:
            if cfg.items and not force:
                raise PreconditionError(
                    f"--all would drop the explicit entries {', '.join(cfg.names())} from {target.label}; "
                    "pass --force to replace them with []")
            return dpconfig.Config() if cfg.items or target.object is None else None
        new, op = dpconfig.upsert(cfg, entry)
        return new if op != "unchanged" or target.object is None else None

    done = dpconfigmap.update(kube, mutate, dry_run, dp_namespace=dp_namespace, on_read=warn)
    _report(report, done, dry_run)
    _upstream_restart(kube, report, done, dry_run, restart)
    return done


def _report(report: Reporter, done: Update, dry_run: DryRun) -> None:
    if done.namespace_created:
        report.status(f"namespace/{done.target.namespace}", "created", dry_run.suffix)
    if done.unvalidated:
        report.warn(f"namespace {done.target.namespace} does not exist yet: {done.target.label} was not validated "
                    "by the server")
    report.status(done.target.label, done.operation, dry_run.suffix)


def _upstream_restart(kube: Kube, report: Reporter, done: Update, dry_run: DryRun, restart: bool) -> None:
    """macvtap-cni reads the ConfigMap only at start: after a change, restart it (--restart) or say how. On an
    unchanged ConfigMap, --restart restarts only a DaemonSet with pods older than the ConfigMap's last write (an
    earlier run changed it without --restart): a second run changes nothing."""

    target = done.target
    for ds in dpconfigmap.upstream_daemonsets(kube, target.namespace, target.name):
        ns, name = ds["metadata"]["namespace"], ds["metadata"]["name"]
        stale = restart and target.object is not None and bool(device_plugins.started_before(
            target.object, daemonset_pods(kube, ds, ns)))
        if done.operation == "unchanged" and not stale:
            continue
        if restart:
            dpconfigmap.restart_daemonset(kube, ds, dry_run)
            report.status(f"daemonset.apps/{name}", "restarted", dry_run.suffix)
        else:
            report.warn(f"DaemonSet {ns}/{name} (upstream macvtap-cni) reads {target.name} only at start: restart it "
                        f"(kubectl -n {ns} rollout restart daemonset {name}) or rerun with --restart")


def unexpose(kube: Kube, report: Reporter, dry_run: DryRun, name: str, *, dp_namespace: str | None = None,
             restart: bool = False) -> Update:
    """Remove the entry `name` through the DP ConfigMap's read-modify-write door. Returns what it did, as
    expose()."""

    def mutate(target: Target, cfg: dpconfig.Config) -> dpconfig.Config | None:
        new, removed = dpconfig.remove(cfg, name)
        if not removed:
            known = ", ".join(cfg.names()) or "none"
            raise PreconditionError(f"{name!r} is not exposed in {target.namespace}/{target.name} "
                                    f"(entries: {known})")
        return new

    done = dpconfigmap.update(kube, mutate, dry_run, dp_namespace=dp_namespace)
    _report(report, done, dry_run)
    _upstream_restart(kube, report, done, dry_run, restart)
    return done


def wait_served(kube: Kube, report: Reporter, target: Target, *, present: list[str], gone: list[str],
                restarted: bool, limit: float, progress: NodeProgress | None = None) -> None:
    """--wait, after expose() or unexpose() wrote `target`: until every node the device plugin reading it runs on
    advertises `present` and no longer advertises `gone` (full resource names), with install --wait's rule, on
    watches. macvtap-cni reads the ConfigMap only at start: waited for only when `restarted` (--restart)."""

    readers = [p for p, _ in device_plugins.find(kube.list(DAEMONSET, target.namespace)) if p.configmap == target.name]
    if not readers:
        raise PreconditionError(f"--wait: no device plugin reads ConfigMap {target.namespace}/{target.name}, so no "
                                "node will serve the change (install the agent: macvtapctl install)")
    for p in readers:
        if p.kind == device_plugins.UPSTREAM and not restarted:
            raise PreconditionError(f"--wait: {p.label} (macvtap-cni) reads ConfigMap {target.name} only at start, "
                                    "so its nodes will not serve the change until it restarts: rerun with "
                                    "--restart to restart it and wait")
        what = "every node serves the change" + ("" if p.kind == device_plugins.AGENT else f" ({p.label} restarted)")
        wait_for_goal(kube, report, Goal(p.namespace, present, gone, daemonset=p.name, done=what), limit, progress)
