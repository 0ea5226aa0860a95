"""`vm create`, `vm check`, `vm convert`: VirtualMachines on macvtap, generated, linted and migrated."""

from __future__ import annotations

import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any

import typer

from macvtapctl import validate, vmflags
from macvtapctl.cli.common import (
    Application,
    BindingNameOption,
    DryRunOption,
    KubevirtVersionOption,
    application,
    describe,
    emit,
)
from macvtapctl.cli.settings import Settings, parse_dry_run
from macvtapctl.errors import ExitCode, MacvtapctlError, UsageError
from macvtapctl.kube.options import DryRun
from macvtapctl.manifests import vm as vmm
from macvtapctl.output import Printer
from macvtapctl.rules import vmlint

app = typer.Typer(no_args_is_help=True, rich_markup_mode=None)

CREATE_HELP = """Generate a VirtualMachine on macvtap (pod network with masquerade plus one macvtap interface per
--network) and print it as YAML, ready for `kubectl apply -f -`; or apply it with --apply.

Printing is offline (no cluster contact). --apply, --dry-run=client and --dry-run=server first check the
cluster: the binding is registered, each NAD exists (in the VM's namespace or default) and its resource is
exposed, MACs are unique on each network. --offline skips those checks (printing only)."""


def complete_nads(ctx: typer.Context, incomplete: str) -> list[str]:
    """Shell completion for --network: the macvtap NADs of the namespace (-n, else the context's), from the
    cluster, with a short timeout; nothing when the cluster cannot say (completion must never fail loudly)."""
    from macvtapctl.cli.common import connect, namespace_of
    from macvtapctl.kube.resources import NAD
    from macvtapctl.rules import nad as nadr

    root = ctx.find_root().params
    settings = Settings(kubeconfig=root.get("kubeconfig"), context=root.get("context"),
                        namespace=root.get("namespace"), request_timeout=3.0, impersonate=root.get("impersonate"),
                        impersonate_uid=root.get("impersonate_uid"),
                        impersonate_groups=tuple(root.get("impersonate_groups") or ()))
    try:
        with connect(settings) as kube:
            nads = kube.list(NAD, namespace_of(settings))
    except Exception:
        return []
    return sorted(n["metadata"]["name"] for n in nads
                  if nadr.is_macvtap(n) and n["metadata"]["name"].startswith(incomplete))


@app.command("create", help=CREATE_HELP)
def create(
    ctx: typer.Context,
    name: Annotated[str, typer.Argument(metavar="NAME", help="VM name (with --count: the base of NAME-{i}).")],
    network: Annotated[list[str] | None, typer.Option(
        "--network", metavar="[NAME=][NS/]NAD", help="A macvtap network; repeatable.",
        autocompletion=complete_nads)] = None,
    memory: Annotated[str | None, typer.Option(
        "--memory", help="Guest memory, e.g. 2Gi (default 1Gi; not with --instancetype).")] = None,
    cpu: Annotated[int | None, typer.Option(
        "--cpu", help="vCPU cores (default 1; not with --instancetype).")] = None,
    image: Annotated[str | None, typer.Option(
        "--image", help=f"Container disk image (default {vmm.DEFAULT_IMAGE}, unless a --volume-* flag is "
                        "given).")] = None,
    instancetype: Annotated[str | None, typer.Option(
        "--instancetype", metavar="[KIND/]NAME",
        help="Instance type (virtctl's flag; KIND defaults to virtualmachineclusterinstancetype).")] = None,
    preference: Annotated[str | None, typer.Option(
        "--preference", metavar="[KIND/]NAME",
        help="Preference (virtctl's flag; KIND defaults to virtualmachineclusterpreference).")] = None,
    volume_containerdisk: Annotated[list[str] | None, typer.Option(
        "--volume-containerdisk", metavar="src:IMAGE[,name:N][,bootorder:B]",
        help="A container disk (virtctl's flag); repeatable.")] = None,
    volume_pvc: Annotated[list[str] | None, typer.Option(
        "--volume-pvc", metavar="src:PVC[,name:N][,bootorder:B]",
        help="A PersistentVolumeClaim disk (virtctl's flag); repeatable.")] = None,
    volume_datasource: Annotated[list[str] | None, typer.Option(
        "--volume-datasource", metavar="src:[NS/]DS[,name:N][,size:Q][,bootorder:B]",
        help="A disk cloned from a CDI DataSource (virtctl's flag); repeatable.")] = None,
    termination_grace_period: Annotated[int | None, typer.Option(
        "--termination-grace-period", metavar="SECONDS", help="terminationGracePeriodSeconds.")] = None,
    access_cred: Annotated[list[str] | None, typer.Option(
        "--access-cred", metavar="[type:ssh|password,]src:SECRET[,method:ga|nocloud][,user:U]",
        help="An access credential from a Secret (virtctl's flag); repeatable.")] = None,
    ga_manage_ssh: Annotated[bool, typer.Option(
        "--ga-manage-ssh", help="Let the guest agent manage SSH keys (virtctl's flag).")] = False,
    cloud_init: Annotated[str, typer.Option(
        "--cloud-init", metavar="nocloud|none", help="Cloud-init data source, or none.")] = "nocloud",
    cloud_init_user_data: Annotated[str | None, typer.Option(
        "--cloud-init-user-data", metavar="BASE64",
        help="Cloud-init user data, base64 (instead of --user/--password-file/--ssh-key).")] = None,
    cloud_init_network_data: Annotated[str | None, typer.Option(
        "--cloud-init-network-data", metavar="BASE64",
        help="Cloud-init network data, base64 (instead of the generated DHCP/static config).")] = None,
    run_strategy: Annotated[str, typer.Option("--run-strategy", help=", ".join(vmm.RUN_STRATEGIES))] = "Always",
    eviction_strategy: Annotated[str | None, typer.Option(
        "--eviction-strategy", metavar="|".join(vmm.EVICTION_STRATEGIES),
        help="What a node drain does to the VM: LiveMigrate moves it (its network too, with the agent); unset: the "
             "cluster's default.")] = None,
    ssh_key: Annotated[list[str] | None, typer.Option(
        "--ssh-key", metavar="KEY|FILE", help="Authorized SSH public key (or a file of them); repeatable.")] = None,
    user: Annotated[str | None, typer.Option("--user", help="Guest user name (cloud-init).")] = None,
    password_file: Annotated[str | None, typer.Option("--password-file", metavar="FILE",
                                                      help="File holding the guest user's password.")] = None,
    ip: Annotated[list[str] | None, typer.Option(
        "--ip", metavar="NET=CIDR[,GW]", help="Static address instead of DHCP on a network; repeatable.")] = None,
    mac: Annotated[list[str] | None, typer.Option(
        "--mac", metavar="NET=MAC|auto",
        help="MAC of a network's NIC, or 'auto' for stable derived MACs on all; repeatable.")] = None,
    no_pod_network: Annotated[bool, typer.Option("--no-pod-network", help="No pod network interface.")] = False,
    no_network_data: Annotated[bool, typer.Option("--no-network-data",
                                                  help="No cloud-init network config (DHCP/static).")] = False,
    label: Annotated[list[str] | None, typer.Option("--label", "-l", metavar="KEY=VALUE",
                                                    help="Label on the VM; repeatable.")] = None,
    node: Annotated[str | None, typer.Option(
        "--node", metavar="NAME",
        help="Run on this node (nodeSelector kubernetes.io/hostname=NAME), e.g. to pin a VM for maintenance or "
             "tests.")] = None,
    node_selector: Annotated[list[str] | None, typer.Option(
        "--node-selector", metavar="KEY=VALUE", help="Run only on nodes with this label; repeatable.")] = None,
    count: Annotated[int, typer.Option("--count", help="How many VMs (named by --name-template).")] = 1,
    name_template: Annotated[str | None, typer.Option("--name-template", metavar="TEMPLATE",
                                                      help="Batch names, e.g. web-{i} (1-based).")] = None,
    binding_name: Annotated[str, typer.Option("--binding-name", help="Registered binding to use.")] = "macvtap",
    apply: Annotated[bool, typer.Option("--apply", help="Server-side apply the VMs instead of printing.")] = False,
    offline: Annotated[bool, typer.Option("--offline", help="Skip cluster checks (printing only).")] = False,
    concurrency: Annotated[int, typer.Option("--concurrency", help="Parallel API writes with --apply.")] = 8,
    force_conflicts: Annotated[bool, typer.Option(
        "--force-conflicts", help="With --apply: take over fields other managers own (kubectl's flag).")] = False,
    dry_run: DryRunOption = "none",
) -> None:
    # Bound once, by keyword: the flags as given (kubectl's Options), then complete, validate, run.
    opts = CreateOptions(
        name=name, network=network or [], memory=memory, cpu=cpu, image=image, instancetype=instancetype,
        preference=preference, volume_containerdisk=volume_containerdisk or [], volume_pvc=volume_pvc or [],
        volume_datasource=volume_datasource or [], termination_grace_period=termination_grace_period,
        access_cred=access_cred or [], ga_manage_ssh=ga_manage_ssh, cloud_init=cloud_init,
        cloud_init_user_data=cloud_init_user_data, cloud_init_network_data=cloud_init_network_data,
        run_strategy=run_strategy, eviction_strategy=eviction_strategy, ssh_key=ssh_key or [], user=user,
        password_file=password_file, ip=ip or [],
        mac=mac or [], no_pod_network=no_pod_network, no_network_data=no_network_data, label=label or [],
        node=node, node_selector=node_selector or [], count=count, name_template=name_template,
        binding_name=binding_name, apply=apply, offline=offline, concurrency=concurrency,
        force_conflicts=force_conflicts, dry_run=dry_run)
    cli = application(ctx)
    opts.complete(cli)
    opts.run(cli, opts.validate())


@dataclass(frozen=True)
class Plan:
    """What validate() hands run(): the VMs' names and the renderer's options they share (run() expands a
    --count batch with vmm.batch)."""

    names: list[str]
    vm: vmm.VMOptions


@dataclass
class CreateOptions:
    """`vm create`'s flags as given, one field per flag (kubectl's Options). complete() adds what the global flags
    decide, validate() applies every rule and converts to the renderer's VMOptions, run() renders, then prints or
    applies. The defaults are the flags' (create() passes every one)."""

    name: str
    network: list[str] = field(default_factory=list)
    memory: str | None = None
    cpu: int | None = None
    image: str | None = None
    instancetype: str | None = None
    preference: str | None = None
    volume_containerdisk: list[str] = field(default_factory=list)
    volume_pvc: list[str] = field(default_factory=list)
    volume_datasource: list[str] = field(default_factory=list)
    termination_grace_period: int | None = None
    access_cred: list[str] = field(default_factory=list)
    ga_manage_ssh: bool = False
    cloud_init: str = "nocloud"
    cloud_init_user_data: str | None = None
    cloud_init_network_data: str | None = None
    run_strategy: str = "Always"
    eviction_strategy: str | None = None
    ssh_key: list[str] = field(default_factory=list)
    user: str | None = None
    password_file: str | None = None
    ip: list[str] = field(default_factory=list)
    mac: list[str] = field(default_factory=list)
    no_pod_network: bool = False
    no_network_data: bool = False
    label: list[str] = field(default_factory=list)
    node: str | None = None
    node_selector: list[str] = field(default_factory=list)
    count: int = 1
    name_template: str | None = None
    binding_name: str = "macvtap"
    apply: bool = False
    offline: bool = False
    concurrency: int = 8
    force_conflicts: bool = False
    dry_run: str = "none"
    # Filled by complete(). Only -n here: the context's namespace is read from the kubeconfig when rendering
    # (run), so a flag error is reported before a kubeconfig one.
    namespace: str | None = field(default=None, init=False)
    dry: DryRun = field(default=DryRun.NONE, init=False)
    fmt: str = field(default="yaml", init=False)

    def complete(self, cli: Application) -> None:
        """What the global flags and --dry-run decide: the dry-run mode, the output format, -n."""
        self.dry = parse_dry_run(self.dry_run)
        self.fmt = cli.output_format(("table", "json", "yaml", "name") if self.apply else ("table", "json", "yaml"))
        self.namespace = cli.settings.namespace

    def validate(self) -> Plan:
        """Every rule on the flags, before anything is rendered or sent: one UsageError naming the flag, the value
        and the rule, or the renderer's options and the VMs' names. Rules run in flag order (the first error wins,
        as it always has)."""
        if self.offline and (self.apply or self.dry is DryRun.SERVER):
            raise UsageError("--offline cannot be combined with --apply or --dry-run=server: both need the cluster")
        if not 1 <= self.concurrency <= 64:
            raise UsageError(f"invalid --concurrency {self.concurrency}: must be from 1 to 64")
        macs = dict(vmflags.parse_mac(v) for v in self.mac if v != "auto")
        networks = [vmflags.network_from_nad(n) for n in self.network]
        password = _password(self.password_file)
        ssh_keys = _ssh_keys(self.ssh_key)
        ips = dict(vmflags.parse_ip(v) for v in self.ip)
        labels = validate.parse_labels(self.label, "--label")
        node_selector = vmflags.node_selector(self.node, self.node_selector)
        if self.namespace:
            validate.check_dns_label(self.namespace, "namespace")
        # The flags `virtctl create vm` users know, with its meanings (docs/vms.md maps each one).
        memory: str | None = "1Gi" if self.memory is None else self.memory
        cpu: int | None = 1 if self.cpu is None else self.cpu
        instancetype = None
        if self.instancetype is not None:
            for flag, given in (("--memory", self.memory is not None), ("--cpu", self.cpu is not None)):
                if given:
                    raise UsageError(f"{flag} cannot be combined with --instancetype: the instance type sets it")
            instancetype = vmflags.parse_matcher(self.instancetype, "--instancetype", vmflags.INSTANCETYPE_KINDS)
            memory = cpu = None
        preference = None
        if self.preference is not None:
            preference = vmflags.parse_matcher(self.preference, "--preference", vmflags.PREFERENCE_KINDS)
        volumes = (("--volume-containerdisk", self.volume_containerdisk), ("--volume-pvc", self.volume_pvc),
                   ("--volume-datasource", self.volume_datasource))
        disks = [vmflags.parse_volume(v, flag, i) for flag, values in volumes for i, v in enumerate(values)]
        image: str | None = vmm.DEFAULT_IMAGE if self.image is None else self.image
        if disks and self.image is None:
            image = None  # as virtctl: the volumes given are the VM's disks
        access_credentials = [vmflags.parse_access_credential(v) for v in self.access_cred]
        if self.cloud_init not in ("nocloud", "none"):
            raise UsageError(f'invalid --cloud-init "{self.cloud_init}": must be nocloud or none (configdrive is not '
                             "supported: the generated network config is NoCloud's)")
        user_data: str | None = None
        network_data: str | None = None
        if self.cloud_init_user_data is not None:
            user_data = vmflags.decode_b64(self.cloud_init_user_data, "--cloud-init-user-data")
        if self.cloud_init_network_data is not None:
            network_data = vmflags.decode_b64(self.cloud_init_network_data, "--cloud-init-network-data")
        opts = vmm.VMOptions(
            networks=networks, binding=self.binding_name, namespace=self.namespace, memory=memory, cpu=cpu,
            image=image, instancetype=instancetype, preference=preference, disks=disks,
            termination_grace_period=self.termination_grace_period, access_credentials=access_credentials,
            cloud_init=self.cloud_init, ga_manage_ssh=self.ga_manage_ssh, user_data_b64=user_data,
            network_data_b64=network_data, run_strategy=self.run_strategy,
            eviction_strategy=self.eviction_strategy, user=self.user, password=password,
            ssh_keys=ssh_keys, ips=ips, macs=macs, auto_mac="auto" in self.mac, pod_network=not self.no_pod_network,
            network_data=not self.no_network_data, labels=labels, node_selector=node_selector)
        vmflags.check_options(opts)
        return Plan(vmflags.names_for(self.name, self.count, self.name_template), opts)

    def run(self, cli: Application, plan: Plan) -> None:
        """Render the VMs, then print them, or check them against the cluster and apply them. The batch's own
        errors (--ip or --mac running out with --count) come after the context's namespace is read, as before."""
        namespace = cli.namespace
        per_vm = vmm.batch(plan.vm, len(plan.names))
        vms = [vmm.render(n, o, default_namespace=namespace) for n, o in zip(plan.names, per_vm, strict=True)]
        printer = cli.printer
        dry, fmt, apply = self.dry, self.fmt, self.apply
        contact = apply or dry is not DryRun.NONE
        if not contact or self.offline:
            _print_vms(printer, vms, fmt)
            return
        from macvtapctl.ops import vm as vmops  # printing alone loads no API client

        try:
            kube = cli.connect()
        except MacvtapctlError as exc:
            if apply or dry is DryRun.SERVER:
                raise
            printer.warn(f"cluster checks skipped: {describe(exc)}")
            _print_vms(printer, vms, fmt)
            return
        with kube:
            existing: dict[str, Any] | None = None
            try:
                existing = vmops.check_against_cluster(kube, printer, vms, namespace)
            except MacvtapctlError as exc:
                if not apply and dry is DryRun.CLIENT and exc.exit_code in (ExitCode.UNREACHABLE, ExitCode.TIMEOUT):
                    printer.warn(f"cluster checks skipped: {describe(exc)}")
                else:
                    raise
            if not apply and dry is not DryRun.SERVER:
                _print_vms(printer, vms, fmt)
                return
            results = vmops.apply_vms(kube, printer, vms, namespace, dry, self.concurrency,
                                      force=self.force_conflicts, progress=_progress(len(vms), printer),
                                      existing=existing)
        emit(printer, fmt, results)


def _ssh_keys(values: list[str]) -> list[str]:
    """Each --ssh-key is a public key, or a path to a file of them."""
    keys = []
    for value in values:
        path = Path(value).expanduser()
        text = path.read_text() if "/" in value and path.is_file() else value
        for raw in text.splitlines():
            line = raw.strip()
            if not line or line.startswith("#"):
                continue
            if not line.startswith(("ssh-", "ecdsa-", "sk-")):
                raise UsageError(f'invalid --ssh-key "{line[:40]}": expected an OpenSSH public key (ssh-ed25519 '
                                 "AAAA..., ssh-rsa ..., ecdsa-...) or a file of them")
            keys.append(line)
    return keys


def _password(path: str | None) -> str | None:
    if path is None:
        return None
    try:
        text = Path(path).read_text().rstrip("\n")
    except OSError as exc:
        raise UsageError(f'cannot read --password-file "{path}": {exc.strerror}') from None
    if not text:
        raise UsageError(f'--password-file "{path}" is empty')
    return text


def _print_vms(printer: Printer, vms: list[dict[str, Any]], fmt: str) -> None:
    """The rendered VMs, as a write prints them: they are the command's output, so YAML unless -o json."""
    emit(printer, "json" if fmt == "json" else "yaml", vms)


class _Progress:
    """The batch's bar, then one summary line (interactive batches only)."""

    def __init__(self, total: int) -> None:
        from macvtapctl.cli.progress import Bar

        self.bar = Bar("applying VMs", total)

    def advance(self) -> None:
        self.bar.advance()

    def close(self, ok: int, failed: int, dry_run: DryRun) -> None:
        self.bar.close()
        print(f"{ok} VMs applied{dry_run.suffix}" + (f", {failed} failed" if failed else ""), file=sys.stderr)


def _progress(total: int, printer: Printer) -> _Progress | None:
    from macvtapctl.cli.progress import interactive

    return _Progress(total) if total > 1 and interactive(printer) else None


# --- vm check -----------------------------------------------------------------------------------------

CHECK_HELP = """Lint VMs that use macvtap: binding not registered, NAD missing or its resource not exposed,
interfaces without networks (and the reverse), the discontinued core `macvtap: {}` binding, no explicit MAC on
a macvtap interface (a live migration gives the target macvtap a random MAC), macvtap as the default network.
Exit code 0: no errors (warnings too with --strict); 8: problems found; other codes: the check itself failed."""


@app.command("check", help=CHECK_HELP)
def check(
    ctx: typer.Context,
    name: Annotated[str | None, typer.Argument(metavar="[NAME]", help="The VM to check (or --all, -A).")]
    = None,
    all_vms: Annotated[bool, typer.Option("--all", help="Every VM in the namespace.")] = False,
    all_namespaces: Annotated[bool, typer.Option("--all-namespaces", "-A", help="Every namespace.")] = False,
    strict: Annotated[bool, typer.Option("--strict", help="Warnings count as problems too.")] = False,
) -> None:
    cli = application(ctx)
    fmt = cli.output_format(("table", "wide", "json", "yaml"))
    if bool(name) == (all_vms or all_namespaces):
        raise UsageError("give a VM NAME, or --all (or -A for every namespace)")
    printer = cli.printer
    namespace = None if all_namespaces else cli.namespace
    from macvtapctl.ops import vm as vmops

    with cli.connect() as kube:
        checked, rows = vmops.lint_vms(kube, name, namespace)
    errors = sum(r["severity"] == vmlint.ERROR for r in rows)
    warnings = len(rows) - errors
    if fmt in ("json", "yaml"):
        printer.document({"checked": checked, "errors": errors, "warnings": warnings, "findings": rows}, fmt)
    elif rows:
        headers = ["namespace", "name", "severity", "check", "message"] + (["field"] if fmt == "wide" else [])
        printer.table(headers, [[r["namespace"], r["name"], r["severity"], r["check"], r["message"]]
                                + ([r["field"]] if fmt == "wide" else []) for r in rows])
    printer.info(f"{checked} VM(s) using macvtap checked: {errors} error(s), {warnings} warning(s)")
    if errors or (strict and warnings):
        raise typer.Exit(int(ExitCode.FINDINGS))


# --- vm convert ---------------------------------------------------------------------------------------

CONVERT_HELP = """Rewrite interfaces that use the discontinued core `macvtap: {}` binding (removed in KubeVirt
v1.3) to `binding: {name: macvtap}`, registering the binding first if needed. Idempotent."""


@app.command("convert", help=CONVERT_HELP)
def convert(
    ctx: typer.Context,
    name: Annotated[str | None, typer.Argument(metavar="[NAME]", help="The VM to convert (or --all, -A).")]
    = None,
    all_vms: Annotated[bool, typer.Option("--all", help="Every VM in the namespace.")] = False,
    all_namespaces: Annotated[bool, typer.Option("--all-namespaces", "-A", help="Every namespace.")] = False,
    binding_name: BindingNameOption = "macvtap",
    kubevirt_version: KubevirtVersionOption = None,
    dry_run: DryRunOption = "none",
) -> None:
    cli = application(ctx)
    fmt = cli.output_format(("table", "json", "yaml", "name"))
    dry = parse_dry_run(dry_run)
    validate.check_binding_name(binding_name)
    if bool(name) == (all_vms or all_namespaces):
        raise UsageError("give a VM NAME, or --all (or -A for every namespace)")
    printer = cli.printer
    namespace = None if all_namespaces else cli.namespace
    from macvtapctl.ops import vm as vmops

    with cli.connect() as kube:
        results = vmops.convert_vms(kube, printer, dry, name, namespace, binding_name=binding_name,
                                    kubevirt_version=kubevirt_version)
    if not results:
        printer.info("no VirtualMachines found")
    emit(printer, fmt, results)


# --- vm migrate ---------------------------------------------------------------------------------------

MIGRATE_HELP = """Live-migrate a running VM to another node (a VirtualMachineInstanceMigration, as `virtctl migrate`
writes it), after checking that it can move with its macvtap network: KubeVirt's LiveMigratable condition, a MAC on
every macvtap interface, another schedulable node advertising every macvtap resource it holds with a device free.
--check runs only the checks (exit 8 when one fails). --wait follows the migration to its end and reports source
and target, KubeVirt's timestamps and each macvtap interface's MAC before and after: exit 1 when it failed, 6 on
--timeout. A VM that cannot move is exit 3, nothing written."""


@app.command("migrate", help=MIGRATE_HELP)
def migrate(
    ctx: typer.Context,
    name: Annotated[str, typer.Argument(metavar="NAME", help="The VM (its running VMI) to migrate.")],
    to: Annotated[str | None, typer.Option("--to", metavar="NODE", help="The node to move it to (default: the "
                                           "scheduler's choice).")] = None,
    check_only: Annotated[bool, typer.Option("--check", help="Only check whether it can move; write nothing.")]
    = False,
    wait: Annotated[bool, typer.Option("--wait", help="Return when the migration has ended.")] = False,
    timeout: Annotated[str, typer.Option("--timeout", metavar="DURATION", help="For --wait.")] = "10m",
    dry_run: DryRunOption = "none",
    force: Annotated[bool, typer.Option("--force", help="Migrate although a macvtap interface has no MAC.")]
    = False,
) -> None:
    from macvtapctl.cli.settings import parse_request_timeout
    from macvtapctl.errors import PreconditionError
    from macvtapctl.rules import migration

    cli = application(ctx)
    fmt = cli.output_format(("table", "json", "yaml", "name"))
    dry = parse_dry_run(dry_run)
    validate.check_dns_subdomain(name, "VM name")
    if to is not None:
        validate.check_dns_subdomain(to, "--to")
    limit = parse_request_timeout(timeout, "--timeout") or 600.0
    if check_only and (wait or dry is not DryRun.NONE):
        raise UsageError("--check writes nothing: it takes neither --wait nor --dry-run")
    printer = cli.printer
    namespace = cli.namespace
    from macvtapctl.ops import migrate as ops

    with cli.connect() as kube:
        reads = ops.preflight(kube, name, namespace, to)
        if check_only:
            _print_checks(printer, fmt, namespace, name, reads.checks)
            return
        for c in reads.checks:
            if c.ok:
                continue
            if not c.blocking or (force and c.id == migration.MAC):
                printer.warn(c.detail)
                continue
            hint = " (--force migrates anyway)" if c.id == migration.MAC else ""
            raise PreconditionError(f"VM {namespace}/{name} cannot migrate: {c.detail}{hint}; nothing was written")
        assert reads.vmi is not None
        vmim = ops.start(kube, reads.vmi, to, dry)
        label = f"virtualmachineinstancemigration.kubevirt.io/{vmim['metadata'].get('name') or '(generated)'}"
        printer.status(label, "created", dry.suffix)
        if not wait or dry is not DryRun.NONE:
            emit(printer, fmt, [vmim])
            return
        final, after = ops.follow(kube, vmim, limit, lambda phase: printer.info(f"migration: {phase}"))
        result = migration.outcome(final, reads.vmi, after, reads.bindings)
        if result["source"] and result["macs"]:
            result["handoff"] = ops.handoffs(kube, result["source"], {m["before"] for m in result["macs"].values()},
                                             result["startTimestamp"])
    _print_outcome(printer, fmt, f"{namespace}/{name}", final, result)
    if result["phase"] == "Failed":
        raise MacvtapctlError(f"migration {final['metadata']['name']} failed: "
                              f"{result['failureReason'] or 'see kubectl describe vmim'}; the VM stays on node "
                              f"{result['node']}")


def _print_checks(printer: Printer, fmt: str, namespace: str, name: str, checks: list[Any]) -> None:
    """`vm migrate --check`: each check; exit 8 when a blocking one failed."""
    blocking = [c for c in checks if not c.ok and c.blocking]
    if fmt in ("json", "yaml"):
        printer.document({"vm": name, "namespace": namespace, "migratable": not blocking,
                          "checks": [{"check": c.id, "ok": c.ok, "detail": c.detail} for c in checks]}, fmt)
    else:
        printer.table(["check", "result", "detail"],
                      [[c.id, "ok" if c.ok else "FAIL" if c.blocking else "warning", c.detail] for c in checks])
    printer.info(f"VM {namespace}/{name} " + ("can migrate" if not blocking else
                                             f"cannot migrate: {len(blocking)} check(s) failed"))
    if blocking:
        raise typer.Exit(int(ExitCode.FINDINGS))


def _print_outcome(printer: Printer, fmt: str, vm: str, final: dict[str, Any], result: dict[str, Any]) -> None:
    if fmt in ("json", "yaml"):
        printer.document(result, fmt)
        return
    if fmt == "name":
        printer.objects([final], fmt)
        return
    printer.info(f"{vm}: node {result['source']} -> node {result['node']} ({result['phase']}; started "
                 f"{result['startTimestamp']}, target domain ready {result['targetNodeDomainReadyTimestamp']}, "
                 f"ended {result['endTimestamp']})")
    for iface, m in result["macs"].items():
        same = "unchanged" if m["before"] == m["after"] else "CHANGED"
        printer.info(f"  {iface}: MAC {m['before']} before, {m['after']} after ({same})")
    handoff = result.get("handoff") or {}
    if "error" in handoff:
        printer.info(f"  hand-off on node {handoff['node']}: unknown ({handoff['error']})")
    elif handoff:
        for e in handoff["events"] or [{"event": "none"}]:
            printer.info(f"  hand-off on node {handoff['node']}: " + {
                "handoff": f"{e.get('mac')}'s source link set down at {e.get('time')} (the VM announced itself "
                           "from its new node)",
                "reverted": f"{e.get('mac')}'s source link up again at {e.get('time')} (its guest still ran there)",
            }.get(e["event"], "none reported by the agent (no announcement from the LAN seen)"))
