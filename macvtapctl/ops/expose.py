"""Expose a host NIC to the device plugin: read-modify-write of the DP ConfigMap (DP_MACVTAP_CONF)."""

from __future__ import annotations

from typing import Any

from macvtapctl import dpconfig, validate
from macvtapctl.errors import PreconditionError, UsageError
from macvtapctl.kube.client import Kube
from macvtapctl.kube.dpconfigmap import Target
from macvtapctl.kube.options import DryRun
from macvtapctl.ops import Reporter


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


def expose(kube: Kube, report: Reporter, mode: DryRun, entry: dpconfig.Entry | None, *,
           dp_namespace: str | None = None, force: bool = False, restart: bool = False) -> list[dict[str, Any]]:
    """Upsert `entry` (None: write []) with re-read/re-plan on conflict. Returns the objects written."""
    from macvtapctl.kube import dpconfigmap
    from macvtapctl.kube.retry import retry_on_conflict

    objs: list[dict[str, Any]] = []
    warned = False

    def attempt() -> None:
        nonlocal warned
        objs.clear()
        target = dpconfigmap.locate(kube, dp_namespace)
        cfg = target.config()
        if not warned:
            for w in cfg.warnings:
                report.warn(w)
            warned = True
        if entry is None:
            if cfg.items and not force:
                raise PreconditionError(
                    f"--all would drop the explicit entries {', '.join(cfg.names())} from {target.label}; "
                    "pass --force to replace them with []")
            new, changed = dpconfig.Config(), bool(cfg.items) or target.object is None
        else:
            new, op = dpconfig.upsert(cfg, entry)
            changed = op != "unchanged" or target.object is None
        if not changed:
            report.status(target.label, "unchanged", mode.suffix)
            if target.object is not None:
                objs.append(target.object)
            return
        ns_obj = dpconfigmap.ensure_namespace(kube, target.namespace, mode) if target.object is None else None
        if ns_obj is not None:
            report.status(f"namespace/{target.namespace}", "created", mode.suffix)
            objs.append(ns_obj)
        write_mode = mode
        if ns_obj is not None and mode is DryRun.SERVER:
            # Nothing can be validated inside a namespace that a dry run did not create.
            report.warn(f"namespace {target.namespace} does not exist yet: {target.label} was not validated by "
                         "the server")
            write_mode = DryRun.CLIENT
        obj, operation = dpconfigmap.write(kube, target, new, write_mode)
        report.status(target.label, operation, mode.suffix)
        objs.append(obj)
        _upstream_restart(kube, report, target, mode, restart)

    retry_on_conflict(attempt, what="the device-plugin ConfigMap")
    return objs


def _upstream_restart(kube: Kube, report: Reporter, target: Target, mode: DryRun, restart: bool) -> None:
    from macvtapctl.kube import dpconfigmap

    for ds in dpconfigmap.upstream_daemonsets(kube, target.namespace, target.name):
        ref = f"{ds['metadata']['namespace']}/{ds['metadata']['name']}"
        if restart:
            dpconfigmap.restart_daemonset(kube, ds, mode)
            report.status(f"daemonset.apps/{ds['metadata']['name']}", "restarted", mode.suffix)
        else:
            report.warn(f"DaemonSet {ref} (upstream macvtap-cni) reads {target.name} only at start: restart it "
                         f"(kubectl -n {ds['metadata']['namespace']} rollout restart daemonset "
                         f"{ds['metadata']['name']}) or rerun with --restart")


def unexpose(kube: Kube, report: Reporter, mode: DryRun, name: str, *, dp_namespace: str | None = None,
             restart: bool = False) -> list[dict[str, Any]]:
    """Remove the entry `name` (re-read and re-planned on conflict). Returns the objects written."""
    from macvtapctl.kube import dpconfigmap
    from macvtapctl.kube.retry import retry_on_conflict

    objs: list[dict[str, Any]] = []

    def attempt() -> None:
        objs.clear()
        target = dpconfigmap.locate(kube, dp_namespace)
        cfg = target.config()
        new, removed = dpconfig.remove(cfg, name)
        if not removed:
            known = ", ".join(cfg.names()) or "none"
            raise PreconditionError(f"{name!r} is not exposed in {target.namespace}/{target.name} "
                                    f"(entries: {known})")
        obj, _ = dpconfigmap.write(kube, target, new, mode)
        report.status(target.label, "configured", mode.suffix)
        objs.append(obj)
        _upstream_restart(kube, report, target, mode, restart)

    retry_on_conflict(attempt, what="the device-plugin ConfigMap")
    return objs
