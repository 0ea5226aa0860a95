"""`macvtapctl rbac`: print a least-privilege ClusterRole (and a binding) for the admin commands."""

from __future__ import annotations

from typing import Annotated

import typer

from macvtapctl import validate
from macvtapctl.cli.common import Application, application
from macvtapctl.errors import PreconditionError, UsageError
from macvtapctl.manifests import rbac as rbacm

HELP = """Print a least-privilege ClusterRole for running macvtapctl's admin commands, plus a
ClusterRoleBinding for --user, --group or --serviceaccount NS/NAME. Apply with: macvtapctl rbac ... |
kubectl apply -f -. Each rule's reason is listed with -v."""


def rbac(
    ctx: typer.Context,
    role_name: Annotated[str, typer.Option("--role-name", help="Name of the ClusterRole (and binding).")]
    = "macvtapctl-admin",
    user: Annotated[str | None, typer.Option("--user", help="Bind the role to this user.")] = None,
    group: Annotated[str | None, typer.Option("--group", help="Bind the role to this group.")] = None,
    serviceaccount: Annotated[str | None, typer.Option("--serviceaccount", metavar="NS/NAME",
                                                       help="Bind the role to this service account.")] = None,
    configmap: Annotated[list[str] | None, typer.Option(
        "--configmap", metavar="NAME", help="Another device-plugin ConfigMap expose may edit (CNAO's "
                                            "devicePluginConfig); repeatable.")] = None,
    from_cluster: Annotated[bool, typer.Option(
        "--from-cluster", help="Ask the cluster which ConfigMap CNAO's devicePluginConfig names.")] = False,
) -> None:
    cli = application(ctx)
    fmt = cli.output_format(("table", "yaml", "json"))
    validate.check_dns_subdomain(role_name, "--role-name")
    subjects = [(k, v) for k, v in (("User", user), ("Group", group), ("ServiceAccount", serviceaccount)) if v]
    if len(subjects) > 1:
        raise UsageError("give at most one of --user, --group and --serviceaccount")
    kind, subject = subjects[0] if subjects else ("User", "REPLACE-WITH-USER")
    sa_ns = None
    if kind == "ServiceAccount":
        sa_ns, _, subject = subject.rpartition("/")
        if not sa_ns:
            raise UsageError(f'invalid --serviceaccount "{serviceaccount}": use NAMESPACE/NAME')
        validate.check_dns_label(sa_ns, "service account namespace")
        validate.check_dns_subdomain(subject, "service account name")
    names_ = [validate.check_dns_subdomain(c, "--configmap") for c in configmap or []]
    printer = cli.printer
    if from_cluster:
        names_ += _cnao_configmaps(cli)
    for groups, resources, verbs, names, why in rbacm.ADMIN_RULES:
        target = ",".join(resources) + (f" ({','.join(names)})" if names else "")
        printer.debug(f"# {'/'.join(g or 'core' for g in groups)} {target}: {','.join(verbs)} - {why}")
    docs = [rbacm.cluster_role(role_name, names_), rbacm.binding(role_name, kind, subject, sa_ns)]
    if fmt == "json":
        printer.objects(docs, "json", as_list=True)
    else:
        printer.yaml_stream(docs)


def _cnao_configmaps(cli: Application) -> list[str]:
    """The ConfigMap CNAO's NetworkAddonsConfig points `expose` at, if any (CNAO not installed: none)."""
    from macvtapctl.dig import dig
    from macvtapctl.kube.resources import NETWORK_ADDONS_CONFIG

    with cli.connect() as kube:
        try:
            nacs = kube.list(NETWORK_ADDONS_CONFIG)
        except PreconditionError:  # the CRD is not served: no CNAO
            return []
    names = [dig(n, "spec", "macvtap", "devicePluginConfig") for n in nacs]
    return [n for n in names if isinstance(n, str) and n]
