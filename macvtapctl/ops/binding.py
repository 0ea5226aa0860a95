"""Register or unregister the macvtap network binding in the KubeVirt CR (or through HyperConverged)."""

from __future__ import annotations

from typing import Any

from macvtapctl.dig import dig
from macvtapctl.errors import PreconditionError
from macvtapctl.kube.client import Kube
from macvtapctl.kube.kubevirt_cr import update
from macvtapctl.kube.options import DryRun
from macvtapctl.kube.vms import vms_using_binding
from macvtapctl.ops import Reporter
from macvtapctl.rules import kubevirt


def enable(kube: Kube, report: Reporter, dry_run: DryRun, *, binding_name: str = kubevirt.DEFAULT_BINDING,
           external_injector: bool = False, kubevirt_version: str | None = None,
           force: bool = False) -> dict[str, Any]:
    """Plan by the running version (kubevirt.plan_enable / plan_enable_hco) and write through the KubeVirt CR's
    read-modify-write door; the decisions are reported once, whatever the retries."""

    def planner(kv: dict[str, Any], hco: dict[str, Any] | None) -> kubevirt.Plan:
        version = kubevirt.require_version(kubevirt.observed_version_of(kv), kubevirt_version)
        if hco is not None:
            return kubevirt.plan_enable_hco(hco, kv, version, binding_name=binding_name,
                                            external_injector=external_injector, force=force)
        return kubevirt.plan_enable(kv, version, binding_name=binding_name, external_injector=external_injector,
                                    force=force)

    done = update(kube, planner, dry_run)
    for note in done.plan.notes:
        report.info(note)
    for warning in done.plan.warnings:
        report.warn(warning)
    label = done.resource.label(done.planned["metadata"]["name"])
    report.status(label, "configured" if done.plan.changed else "unchanged", dry_run.suffix)
    return done.written


def disable(kube: Kube, report: Reporter, dry_run: DryRun, *, binding_name: str = kubevirt.DEFAULT_BINDING,
            force: bool = False) -> dict[str, Any]:
    """Unregister the binding; refused while VMs use it unless `force`. Gates stay (others may need them)."""

    users = vms_using_binding(kube, binding_name)
    if users and not force:
        shown = ", ".join(users[:10]) + (f" and {len(users) - 10} more" if len(users) > 10 else "")
        raise PreconditionError(f"network binding {binding_name!r} is used by {len(users)} VM(s): {shown}; "
                                "delete or change them first, or pass --force")

    def planner(kv: dict[str, Any], hco: dict[str, Any] | None) -> kubevirt.Plan:
        if hco is None:
            return kubevirt.plan_disable(kv, binding_name=binding_name)
        plan = kubevirt.Plan()
        if dig(hco, "spec", "networkBinding", binding_name) is not None:
            plan.patch = {"spec": {"networkBinding": {binding_name: None}}}
        return plan

    done = update(kube, planner, dry_run)
    label = done.resource.label(done.planned["metadata"]["name"])
    report.status(label, "configured" if done.plan.changed else "unchanged", dry_run.suffix)
    return done.written
