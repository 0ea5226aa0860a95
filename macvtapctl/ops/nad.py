"""NetworkAttachmentDefinitions for macvtap resources: create (server-side apply) and delete, leaving other
people's NADs alone."""

from __future__ import annotations

from typing import Any

from macvtapctl.errors import ConflictError, PreconditionError
from macvtapctl.kube.client import Kube
from macvtapctl.kube.dpconfigmap import current_config
from macvtapctl.kube.options import DryRun
from macvtapctl.kube.resources import NAD
from macvtapctl.kube.vms import vms_using_network
from macvtapctl.ops import Reporter
from macvtapctl.rules import dpconfig
from macvtapctl.rules import nad as nadr


def create(kube: Kube, report: Reporter, dry_run: DryRun, obj: dict[str, Any],
               exposed: dpconfig.Config | None = None, *, force: bool = False) -> dict[str, Any]:
    """Warn about unexposed resources, then server-side apply the NAD (no write when unchanged).

    An existing NAD of that name that is not a macvtap NAD macvtapctl manages is someone else's: refused
    (exit 5) unless `force`."""

    name, namespace = obj["metadata"]["name"], obj["metadata"]["namespace"]
    resource = nadr.resource_of(obj)
    if exposed is None:
        exposed = current_config(kube)
    if exposed is not None and not exposed.expose_all and resource not in exposed.names():
        report.warn(f"resource {resource!r} is not exposed (exposed: {', '.join(exposed.names()) or 'none'}); "
                     f"VMs using this NAD will not schedule until you run: macvtapctl expose LOWER_DEVICE "
                     f"--name {resource}")
    if namespace != "default":
        report.info(f"note: only VMs in namespace {namespace!r} can use this NAD; create it in 'default' to "
                     "share it with every namespace")
    current = kube.get_or_none(NAD, name, namespace)
    label = NAD.label(name)
    if current is not None and nadr.same_content(current, obj):
        report.status(label, "unchanged", dry_run.suffix)
        return dict(current)
    if current is not None:
        problem = nadr.ownership_problem(current, kube.field_manager)
        if problem and not force:
            raise ConflictError(f"{problem}; not changing it. Choose another name, or pass --force to take it over")
        if problem:
            report.warn(f"{problem}; taking it over (--force)")
    operation = "created" if current is None else "configured"
    if dry_run is DryRun.CLIENT:
        report.status(label, operation, dry_run.suffix)
        return obj
    result: dict[str, Any] = kube.apply(NAD, obj, namespace, dry_run=dry_run, force=True)
    report.status(label, operation, dry_run.suffix)
    return result


def delete(kube: Kube, report: Reporter, dry_run: DryRun, name: str, namespace: str, *, force: bool = False) -> None:
    """Refused while VMs reference the NAD, or when it is someone else's, unless `force`."""

    current = kube.get_or_none(NAD, name, namespace)
    if current is None:
        raise PreconditionError(f'NetworkAttachmentDefinition "{name}" not found in namespace "{namespace}"')
    problem = nadr.ownership_problem(current, kube.field_manager)
    if problem and not force:
        raise ConflictError(f"{problem}; not deleting it (pass --force to delete it anyway)")
    users = vms_using_network(kube, namespace, name)
    if users and not force:
        raise PreconditionError(f"NetworkAttachmentDefinition {namespace}/{name} is used by VM(s) "
                                f"{', '.join(users)}; change or delete them first, or pass --force")
    if dry_run is not DryRun.CLIENT:
        kube.delete(NAD, name, namespace, dry_run=dry_run)
    report.status(NAD.label(name), "deleted", dry_run.suffix)
