"""`install`, `uninstall`, `kind-config`: deploy the node agent (or enable macvtap in CNAO)."""

from __future__ import annotations

import dataclasses
from typing import Annotated

import typer

from macvtapctl import identity, validate
from macvtapctl.cli.common import DryRunOption, ForceOption, application, emit
from macvtapctl.cli.settings import parse_dry_run
from macvtapctl.errors import UsageError
from macvtapctl.kube.options import DryRun
from macvtapctl.manifests import agent as agentm
from macvtapctl.manifests import injector as injm

INSTALL_HELP = """Deploy the macvtapctl node agent (device plugin + CNI) as a DaemonSet: namespace, ServiceAccount
with a Role and RoleBinding that let it read only its device-plugin ConfigMap (get, list, watch on that one name,
to follow a change within a second), the device-plugin ConfigMap (created with [] only when absent; never
overwritten) and the DaemonSet, all server-side applied. --via cnao enables macvtap in an existing Cluster
Network Addons Operator instead. --wait waits until the agent is ready on every selected node and those nodes
advertise the exposed resources. Refused while another macvtap device plugin (upstream macvtap-cni, CNAO's) runs:
--take-over switches its nodes to the agent, keeping its ConfigMap, NADs and running pods and VMs. --injector also
deploys network-resources-injector v1.9.0 (KubeVirt v1.9+ no longer adds the macvtap device request to VM pods; from
v1.10 only an injector does) with its own certificate and a webhook for pods that ask for networks; refused while
another injector is deployed; with --wait, until both its replicas are available and a dry-run pod that asks for a
macvtap network comes back with the request."""
UNINSTALL_HELP = """Remove what install created (the DaemonSet, ServiceAccount, Role and RoleBinding, and
install --injector's objects; the ConfigMap and namespace only with --purge). First the agent is rolled to its
uninstall mode on every node: it takes the CNI shim out of the CNI bin dir (a shim without its agent would fail
every pod's teardown) and deletes the macvtap links no pod owns. Refused while VMs use macvtap, unless --force.
--purge-node-resources also clears the stale macvtap.network.kubevirt.io/* capacity the kubelet leaves on nodes.
--restore-upstream gives the nodes back to the macvtap-cni that install --take-over replaced, then removes the
agent (running VMs keep their network)."""
KIND_CONFIG_HELP = "Print a KinD cluster config whose nodes see the host's /dev (macvtap's /dev/tapN lives there)."


def _options(image: str, namespace: str, node_selector: list[str], toleration: list[str], cni_bin_dir: str,
             device_plugin_dir: str) -> agentm.InstallOptions:
    validate.check_dns_label(namespace, "--namespace")
    if not image or any(c.isspace() for c in image):
        raise UsageError(f'invalid --image "{image}": an image reference has no whitespace')
    return agentm.InstallOptions(
        image=image, namespace=namespace, node_selector=agentm.parse_node_selector(node_selector),
        tolerations=[agentm.parse_toleration(t) for t in toleration],
        cni_bin_dir=agentm.check_host_path(cni_bin_dir, "--cni-bin-dir"),
        device_plugin_dir=agentm.check_host_path(device_plugin_dir, "--device-plugin-dir"))


def install(
    ctx: typer.Context,
    image: Annotated[str | None, typer.Option(
        "--image", help=f"Agent image (default {agentm.DEFAULT_IMAGE}, not published yet: build and push your own, "
                        "see docs/install.md).")] = None,
    node_selector: Annotated[list[str] | None, typer.Option("--node-selector", metavar="KEY=VALUE",
                                                            help="Only these nodes; repeatable.")] = None,
    toleration: Annotated[list[str] | None, typer.Option(
        "--toleration", metavar="KEY[=VALUE][:EFFECT]|*", help="Tolerations (default: tolerate all); repeatable.")]
    = None,
    cni_bin_dir: Annotated[str, typer.Option(
        "--cni-bin-dir", help="The container runtime's CNI bin dir on the nodes (the shim goes there).")]
    = identity.CNI_BIN_DIR,
    device_plugin_dir: Annotated[str, typer.Option(
        "--device-plugin-dir", help="The kubelet's device-plugin directory on the nodes (k3s and others differ).")]
    = identity.DEVICE_PLUGIN_DIR,
    via: Annotated[str, typer.Option("--via", metavar="agent|cnao", help="What deploys macvtap.")] = "agent",
    device_plugin_config: Annotated[str | None, typer.Option(
        "--device-plugin-config", metavar="CONFIGMAP", help="With --via cnao: a user-owned DP ConfigMap.")] = None,
    wait: Annotated[bool, typer.Option("--wait", help="Wait until ready on every selected node.")] = False,
    timeout: Annotated[str, typer.Option("--timeout", metavar="DURATION", help="For --wait and --take-over.")]
    = "5m",
    take_over: Annotated[bool, typer.Option(
        "--take-over", help="Switch the nodes from a running macvtap-cni (upstream's or CNAO's) to the agent: "
                            "beside it, reading its ConfigMap; it is removed once the agent is ready everywhere.")]
    = False,
    injector: Annotated[bool, typer.Option(
        "--injector", help="Also deploy network-resources-injector (KubeVirt v1.9+): adds the macvtap device "
                           "request to pods that ask for a macvtap network.")] = False,
    injector_image: Annotated[str | None, typer.Option(
        "--injector-image", help=f"With --injector (default {injm.DEFAULT_IMAGE}).")] = None,
    dry_run: DryRunOption = "none",
) -> None:
    from macvtapctl.cli.settings import parse_request_timeout

    cli = application(ctx)
    settings = cli.settings
    fmt = cli.output_format(("table", "json", "yaml", "name"))
    dry = parse_dry_run(dry_run)
    limit = parse_request_timeout(timeout, "--timeout") or 300.0
    _check_flags(via, device_plugin_config, take_over, dry)
    # -n/--namespace (global, kubectl's) is the agent's namespace here; default "macvtap".
    namespace = settings.namespace or identity.DEFAULT_NAMESPACE
    opts = _options(image or agentm.DEFAULT_IMAGE, namespace, node_selector or [], toleration or [], cni_bin_dir,
                    device_plugin_dir)
    iopts = _injector_options(injector, injector_image, take_over, namespace)
    printer = cli.printer
    if image is None and via == "agent":
        # Said before anything is written: otherwise every node shows ImagePullBackOff and nothing else.
        printer.warn(f"{agentm.DEFAULT_IMAGE} is not published in a registry yet: nodes will fail to pull it. Build "
                     "the image (make image), push it (skopeo copy oci-archive:build/agent-image.tar "
                     "docker://REGISTRY/macvtapctl/agent:TAG) and pass --image REGISTRY/macvtapctl/agent:TAG")
    objs = [agentm.network_addons_config(device_plugin_config)] if via == "cnao" else agentm.objects(opts)
    from macvtapctl.cli.progress import Bar, interactive
    from macvtapctl.ops import cnao, switch
    from macvtapctl.ops import injector as injecting
    from macvtapctl.ops import install as installing

    if dry is DryRun.CLIENT:
        from macvtapctl.output import resource_label

        objs += injecting.objects(None, iopts) if iopts else []
        for obj in objs:
            printer.status(resource_label(obj), "created", dry.suffix)
        emit(printer, fmt, objs)
        return
    with cli.connect() as kube:
        if take_over:
            result = switch.take_over(kube, printer, dry, opts, settings.namespace, limit,
                                      progress=Bar("nodes ready", 0) if interactive(printer) else None)
            emit(printer, fmt, result)
            return
        reads = switch.refuse_others(kube, opts.namespace, via_cnao=via == "cnao")
        if via == "agent" and reads and reads != opts.configmap:  # keep the agent on the ConfigMap it reads
            opts.configmap, objs = reads, agentm.objects(dataclasses.replace(opts, configmap=reads))
        if via == "agent" and reads and switch.taken_over(kube, opts.namespace):
            objs = [o for o in objs if o["kind"] != "Namespace"]  # upstream's namespace: its labels are its owner's
        # The stored certificate while it is good; refused before anything is written when another injector runs.
        extra = injecting.objects(kube, iopts, refuse_others=True) if iopts else []
        result = [cnao.via_cnao(kube, printer, dry, objs[0])] if via == "cnao" else []
        # With --via cnao the injector still lives in -n's namespace, which only the agent's objects create.
        own = (objs if via == "agent" else [agentm.namespace(opts)] if extra else []) + extra
        result += installing.apply_objects(kube, printer, dry, own, opts.namespace) if own else []
        if wait and dry is DryRun.NONE:
            if via == "cnao":
                printer.warn("--wait follows the macvtapctl agent; with --via cnao watch CNAO's macvtap-cni instead")
            else:
                installing.wait_ready(kube, printer, opts, limit,
                                  progress=Bar("nodes ready", 0) if interactive(printer) else None)
            if iopts:
                injecting.wait_rolled_out(kube, printer, namespace, limit)
                injecting.wait_verified(kube, printer, namespace, limit)
    emit(printer, fmt, result)


def _check_flags(via: str, device_plugin_config: str | None, take_over: bool, dry: DryRun) -> None:
    if via not in ("agent", "cnao"):
        raise UsageError(f'invalid --via "{via}": must be agent or cnao')
    if device_plugin_config and via != "cnao":
        raise UsageError("--device-plugin-config only applies to --via cnao")
    if device_plugin_config:
        validate.check_dns_subdomain(device_plugin_config, "--device-plugin-config")
    if take_over and via != "agent":
        raise UsageError("--take-over switches to the agent: it cannot be combined with --via cnao")
    if take_over and dry is DryRun.CLIENT:
        raise UsageError("--take-over reads what serves macvtap today: use --dry-run=server")


def _injector_options(injector: bool, image: str | None, take_over: bool,
                      namespace: str) -> injm.InjectorOptions | None:
    if image is not None and not injector:
        raise UsageError("--injector-image only applies to --injector")
    if injector and take_over:
        raise UsageError("--injector cannot be combined with --take-over: run install --injector after it")
    if image is not None and (not image or any(c.isspace() for c in image)):
        raise UsageError(f'invalid --injector-image "{image}": an image reference has no whitespace')
    return injm.InjectorOptions(namespace=namespace, image=image or injm.DEFAULT_IMAGE) if injector else None

def uninstall(
    ctx: typer.Context,
    purge: Annotated[bool, typer.Option("--purge", help="Also delete the DP ConfigMap and the namespace.")] = False,
    purge_node_resources: Annotated[bool, typer.Option(
        "--purge-node-resources", help="Clear macvtap.network.kubevirt.io/* capacity left on nodes.")] = False,
    restore_upstream: Annotated[bool, typer.Option(
        "--restore-upstream", help="Give the nodes back to the macvtap-cni that install --take-over replaced "
                                   "(its DaemonSet, or CNAO's macvtap), then remove the agent.")] = False,
    timeout: Annotated[str, typer.Option("--timeout", metavar="DURATION",
                                         help="For --restore-upstream: how long macvtap-cni may take.")] = "5m",
    dry_run: DryRunOption = "none",
    force: ForceOption = False,
) -> None:
    from macvtapctl.cli.settings import parse_request_timeout

    cli = application(ctx)
    settings = cli.settings
    dry = parse_dry_run(dry_run)
    namespace = validate.check_dns_label(settings.namespace or identity.DEFAULT_NAMESPACE, "--namespace")
    limit = parse_request_timeout(timeout, "--timeout") or 300.0
    if restore_upstream and purge:
        raise UsageError("--restore-upstream keeps the ConfigMap and namespace macvtap-cni reads: it cannot be "
                         "combined with --purge")
    if restore_upstream and dry is DryRun.CLIENT:
        raise UsageError("--restore-upstream reads the take-over record: use --dry-run=server")
    printer = cli.printer
    from macvtapctl.ops import uninstall as ops

    with cli.connect() as kube:
        if restore_upstream:
            from macvtapctl.ops import switch

            switch.give_back(kube, printer, dry, settings.namespace, limit)
            if purge_node_resources:
                ops.purge_nodes(kube, printer, dry)
            return
        ops.uninstall(kube, printer, dry, namespace, purge=purge, purge_node_resources=purge_node_resources,
                         force=force)


def kind_config(
    ctx: typer.Context,
    nodes: Annotated[int, typer.Option("--nodes", help="Nodes: one control plane, the rest workers.")] = 2,
) -> None:
    cli = application(ctx)
    fmt = cli.output_format(("table", "yaml", "json"))
    doc = agentm.kind_config(nodes)
    printer = cli.printer
    if fmt == "json":
        printer.document(doc, "json")
    else:
        printer.yaml_stream([doc])
