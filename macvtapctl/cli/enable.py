"""`macvtapctl enable` / `disable`: register the macvtap network binding in the KubeVirt CR, safely."""

from __future__ import annotations

from typing import Annotated, Any

import typer

from macvtapctl import kubevirt
from macvtapctl.cli.common import (
    WRITE_FORMATS,
    DryRunOption,
    ForceOption,
    connect,
    dry_run_of,
    emit,
    printer_for,
    settings_of,
)
from macvtapctl.errors import PreconditionError
from macvtapctl.jsonmerge import dig
from macvtapctl.settings import DryRun

ENABLE_HELP = """Register the macvtap network binding plugin in the KubeVirt CR.

Finds the KubeVirt CR in any namespace and plans by its status.observedKubeVirtVersion: adds the
NetworkBindingPlugins gate on v1.1-v1.4, nothing on v1.5+ (GA), and on v1.9+ disables
ExternalNetResourceInjection so KubeVirt keeps requesting the macvtap device for VM pods (unless
--external-injector). Every other binding, gate and setting is kept. Goes through HyperConverged when HCO
manages KubeVirt."""

DISABLE_HELP = "Unregister the macvtap network binding (refused while VMs use it, unless --force)."

BindingName = Annotated[str, typer.Option("--binding-name", help="Name of the binding in the KubeVirt CR.")]


def enable(
    ctx: typer.Context,
    binding_name: BindingName = kubevirt.DEFAULT_BINDING,
    external_injector: Annotated[bool, typer.Option(
        "--external-injector",
        help="v1.9+: network-resources-injector is deployed; leave ExternalNetResourceInjection on.")] = False,
    kubevirt_version: Annotated[str | None, typer.Option(
        "--kubevirt-version", metavar="vX.Y.Z",
        help="Plan for this KubeVirt version instead of the CR's observed one.")] = None,
    dry_run: DryRunOption = "none",
    force: ForceOption = False,
) -> None:
    settings = settings_of(ctx)
    fmt = settings.output_format(WRITE_FORMATS)
    mode = dry_run_of(dry_run)
    from macvtapctl.validate import check_binding_name

    check_binding_name(binding_name)
    if kubevirt_version is not None:
        kubevirt.require_version(None, kubevirt_version)  # bad input fails before any request
    printer = printer_for(settings)
    with connect(settings) as kube:
        result = run_enable(kube, printer, mode, binding_name=binding_name, external_injector=external_injector,
                            kubevirt_version=kubevirt_version, force=force)
    emit(printer, fmt, [result])


def run_enable(kube: Any, printer: Any, mode: DryRun, *, binding_name: str = kubevirt.DEFAULT_BINDING,
               external_injector: bool = False, kubevirt_version: str | None = None,
               force: bool = False) -> dict[str, Any]:
    """enable's work, reusable by `setup`: plan, print the decisions, write once (retrying on conflict)."""
    from macvtapctl.kube.kubevirt_cr import get_hco, hco_owner, the_kubevirt
    from macvtapctl.kube.resources import HYPERCONVERGED, KUBEVIRT
    from macvtapctl.kube.retry import retry_on_conflict

    first = True
    result: dict[str, Any] = {}

    def attempt() -> None:
        nonlocal first, result
        kv = the_kubevirt(kube)
        ns = kv["metadata"]["namespace"]
        version = kubevirt.require_version(kubevirt.observed_version_of(kv), kubevirt_version)
        owner = hco_owner(kv)
        if owner is not None:
            target_res, target = HYPERCONVERGED, get_hco(kube, owner, ns)
            plan = kubevirt.plan_enable_hco(target, kv, version, binding_name=binding_name,
                                            external_injector=external_injector, force=force)
        else:
            target_res, target = KUBEVIRT, kv
            plan = kubevirt.plan_enable(kv, version, binding_name=binding_name,
                                        external_injector=external_injector, force=force)
        if first:
            for note in plan.notes:
                printer.info(note)
            for warning in plan.warnings:
                printer.warn(warning)
            first = False
        result = _write(kube, printer, mode, target_res, target, plan)

    retry_on_conflict(attempt, what="the KubeVirt CR")
    return result


def _write(kube: Any, printer: Any, mode: DryRun, res: Any, obj: dict[str, Any],
           plan: kubevirt.Plan) -> dict[str, Any]:
    name, ns = obj["metadata"]["name"], obj["metadata"].get("namespace")
    label = res.label(name)
    if not plan.changed:
        printer.status(label, "unchanged", mode.suffix)
        return obj
    if mode is DryRun.CLIENT:
        printer.status(label, "configured", mode.suffix)
        return kubevirt.apply_plan(obj, plan)
    rv = obj["metadata"]["resourceVersion"]
    written: dict[str, Any] = kube.merge_patch(res, name, kubevirt.guarded(plan.patch, rv), ns, dry_run=mode)
    printer.status(label, "configured", mode.suffix)
    return written


def disable(
    ctx: typer.Context,
    binding_name: BindingName = kubevirt.DEFAULT_BINDING,
    dry_run: DryRunOption = "none",
    force: ForceOption = False,
) -> None:
    settings = settings_of(ctx)
    fmt = settings.output_format(WRITE_FORMATS)
    mode = dry_run_of(dry_run)
    from macvtapctl.validate import check_binding_name

    check_binding_name(binding_name)
    printer = printer_for(settings)
    with connect(settings) as kube:
        from macvtapctl.kube.kubevirt_cr import get_hco, hco_owner, the_kubevirt
        from macvtapctl.kube.resources import HYPERCONVERGED, KUBEVIRT
        from macvtapctl.kube.retry import retry_on_conflict
        from macvtapctl.kube.vms import vms_using_binding

        users = vms_using_binding(kube, binding_name)
        if users and not force:
            shown = ", ".join(users[:10]) + (f" and {len(users) - 10} more" if len(users) > 10 else "")
            raise PreconditionError(f"network binding {binding_name!r} is used by {len(users)} VM(s): {shown}; "
                                    "delete or change them first, or pass --force")
        result: dict[str, Any] = {}

        def attempt() -> None:
            nonlocal result
            kv = the_kubevirt(kube)
            owner = hco_owner(kv)
            if owner is not None:
                hco = get_hco(kube, owner, kv["metadata"]["namespace"])
                plan = kubevirt.Plan()
                if dig(hco, "spec", "networkBinding", binding_name) is not None:
                    plan.patch = {"spec": {"networkBinding": {binding_name: None}}}
                result = _write(kube, printer, mode, HYPERCONVERGED, hco, plan)
            else:
                result = _write(kube, printer, mode, KUBEVIRT, kv, kubevirt.plan_disable(kv, binding_name=binding_name))

        retry_on_conflict(attempt, what="the KubeVirt CR")
    emit(printer, fmt, [result])
