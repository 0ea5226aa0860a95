"""`macvtapctl agent`: the node agent (runs on every node, as root, in the host network namespace)."""

from __future__ import annotations

from typing import Annotated

import typer

from macvtapctl import identity
from macvtapctl.agent.config import DEFAULTS
from macvtapctl.errors import MacvtapctlError, UsageError

HELP = """The macvtap CNI datapath behind the static shim, and the kubelet device plugin. Runs as root in the
node's network namespace (a DaemonSet pod). --install-cni DIR first installs the shim as DIR/macvtap (atomic,
idempotent)."""


app = typer.Typer(invoke_without_command=True, rich_markup_mode=None)  # help: summary + HELP


@app.callback()
def agent(
    ctx: typer.Context,
    cni_socket: Annotated[str, typer.Option("--cni-socket", envvar="MACVTAPCTL_CNI_SOCKET",
                                            help="Unix socket the shim connects to.")] = DEFAULTS.cni_socket,
    install_cni: Annotated[str | None, typer.Option("--install-cni", metavar="DIR",
                                                    help="Install the shim as DIR/macvtap first.")] = None,
    install_only: Annotated[bool, typer.Option("--install-only", help="Install the shim, then exit.")] = False,
    shim: Annotated[str | None, typer.Option("--shim", metavar="PATH", help="The compiled shim to install.")] = None,
    gc_min_age: Annotated[float, typer.Option(
        "--gc-min-age", metavar="SECONDS",
        help="Never reclaim a link younger than this (its Allocate may answer before the kubelet lists the pod).")]
    = DEFAULTS.gc_min_age,
    workers: Annotated[int, typer.Option("--workers", help="Concurrent CNI calls.")] = DEFAULTS.workers,
    tap_dir: Annotated[str, typer.Option("--tap-dir", hidden=True)] = DEFAULTS.tap_dir,
    device_plugin: Annotated[bool, typer.Option("--device-plugin/--no-device-plugin",
                                                help="Run the kubelet device plugin.")] = DEFAULTS.device_plugin,
    device_plugin_dir: Annotated[str, typer.Option(
        "--device-plugin-dir", envvar="MACVTAPCTL_DEVICE_PLUGIN_DIR",
        help="The kubelet's device-plugin directory (k3s and others differ).")] = DEFAULTS.plugin_dir,
    config_file: Annotated[str | None, typer.Option(
        "--config-file", metavar="PATH", envvar="MACVTAPCTL_CONFIG_FILE",
        help="DP_MACVTAP_CONF as a file (a mounted ConfigMap), re-read on change; default: the "
             "DP_MACVTAP_CONF environment variable.")] = None,
    configmap: Annotated[str | None, typer.Option(
        "--configmap", metavar="[NAMESPACE/]NAME", envvar="MACVTAPCTL_CONFIGMAP",
        help="Follow this ConfigMap through the API server (the pod's service-account token; namespace: "
             "POD_NAMESPACE's), within a second of a change; --config-file is the fallback while the API server "
             "does not answer.")] = None,
    veth_is_physical: Annotated[bool, typer.Option(
        "--veth-is-physical", help="Testing: with [], expose veth links as if they were NICs.")] = False,
    metrics_address: Annotated[str, typer.Option(
        "--metrics-address", metavar="HOST:PORT",
        help="/healthz, /readyz, /metrics, /doctor and /probe/dhcp; empty to disable.")]
    = f"{DEFAULTS.metrics_host}:{DEFAULTS.metrics_port}",
    pod_resources_socket: Annotated[str, typer.Option(
        "--pod-resources-socket", metavar="PATH",
        help="The kubelet's pod-resources API: which devices live pods own; links no pod owns are reclaimed.")]
    = DEFAULTS.pod_resources_socket,
    reclaim_interval: Annotated[float, typer.Option(
        "--reclaim-interval", metavar="SECONDS", help="How often to reclaim links no pod owns; 0: only on CNI GC.")]
    = DEFAULTS.reclaim_interval,
    uninstall: Annotated[bool, typer.Option(
        "--uninstall", help="Remove the shim from --install-cni DIR and the links no pod owns, then idle (what "
                            "`macvtapctl uninstall` rolls the DaemonSet to before deleting it).")] = False,
    log_level: Annotated[str, typer.Option("--log-level", envvar="MACVTAPCTL_LOG_LEVEL",
                                           help="debug, info, warning or error.")] = "info",
    node_name: Annotated[str, typer.Option(
        "--node-name", envvar="NODE_NAME", help="This node's name, in the report `doctor` reads (GET /doctor).")]
    = "",
    report_interval: Annotated[float, typer.Option(
        "--report-interval", metavar="SECONDS", help="How often to run the node checks `doctor` reads; 0: never.")]
    = DEFAULTS.report_interval,
) -> None:
    if ctx.invoked_subcommand is not None:
        return
    import asyncio
    import os

    from macvtapctl.agent import cni_bin, daemon
    from macvtapctl.agent.config import AgentConfig

    if log_level.lower() not in ("debug", "info", "warning", "error"):
        raise UsageError(f'invalid --log-level "{log_level}": debug, info, warning or error')
    if not 1 <= workers <= 256:
        raise UsageError(f"invalid --workers {workers}: must be from 1 to 256")
    if gc_min_age < 0:
        raise UsageError(f"invalid --gc-min-age {gc_min_age}: must be >= 0")
    if reclaim_interval < 0:
        raise UsageError(f"invalid --reclaim-interval {reclaim_interval}: must be >= 0")
    if report_interval < 0:
        raise UsageError(f"invalid --report-interval {report_interval}: must be >= 0")
    if install_only and not install_cni:
        raise UsageError("--install-only needs --install-cni DIR")
    follow = _configmap(configmap, config_file)
    daemon.setup_logging(log_level)
    if uninstall:
        if os.geteuid() != 0:
            raise MacvtapctlError("the agent must run as root (it deletes links on the node)")
        host_, port_ = _metrics_address(metrics_address)
        asyncio.run(daemon.run_uninstall(AgentConfig(
            metrics_host=host_ or "0.0.0.0", metrics_port=port_,  # noqa: S104
            pod_resources_socket=pod_resources_socket), install_cni))
        return
    if install_cni:
        try:
            changed = cni_bin.install(cni_bin.find_shim(shim), install_cni)
        except (OSError, FileNotFoundError) as exc:
            raise MacvtapctlError(f"cannot install the CNI shim into {install_cni}: {exc}") from None
        from macvtapctl.output import Printer

        Printer().status(f"{install_cni}/macvtap", "installed" if changed else "unchanged")
        if install_only:
            return
    if os.geteuid() != 0:
        raise MacvtapctlError("the agent must run as root (it moves links between network namespaces)")
    host, port = _metrics_address(metrics_address)
    try:
        asyncio.run(daemon.run(AgentConfig(
            cni_socket=cni_socket, gc_min_age=gc_min_age, workers=workers, tap_dir=tap_dir,
            device_plugin=device_plugin, plugin_dir=device_plugin_dir, config_file=config_file,
            veth_is_physical=veth_is_physical, metrics_host=host or "0.0.0.0", metrics_port=port,  # noqa: S104
            pod_resources_socket=pod_resources_socket, reclaim_interval=reclaim_interval, node_name=node_name,
            cni_bin_dir=install_cni, report_interval=report_interval, configmap=follow)))
    except daemon.AgentFailed as exc:  # logged with its traceback already; exit 1 so the kubelet restarts us
        raise MacvtapctlError(str(exc)) from None


def _configmap(value: str | None, config_file: str | None) -> tuple[str, str] | None:
    """--configmap [NAMESPACE/]NAME as (namespace, name); the namespace defaults to the pod's (POD_NAMESPACE)."""
    import os

    from macvtapctl import validate

    if value is None:
        return None
    if not config_file:
        raise UsageError(f'invalid --configmap "{value}": needs --config-file (the fallback while the API server '
                         "does not answer)")
    ns, _, name = value.rpartition("/")
    ns = ns or os.environ.get("POD_NAMESPACE", "")
    if not ns:
        raise UsageError(f'invalid --configmap "{value}": give NAMESPACE/NAME, or set POD_NAMESPACE')
    validate.check_dns_subdomain(name, "--configmap")
    validate.check_dns_label(ns, "--configmap namespace")
    return ns, name


def _metrics_address(value: str) -> tuple[str, int]:
    if not value:
        return "", 0
    host, _, port_text = value.rpartition(":")
    if not port_text.isdigit() or not 0 <= int(port_text) <= 65535:
        raise UsageError(f'invalid --metrics-address "{value}": expected HOST:PORT')
    return host, int(port_text)


CHECK_HELP = """Check this node for macvtap: configured lower devices exist and are up, a /dev/tapN created here is
visible in this mount namespace (the KinD /dev problem), no leaked temporary links, the kubelet socket is present,
attached tap devices belong to the configured owner. Exit code 8 when a check fails."""


@app.command("check", help=CHECK_HELP)
def check(
    ctx: typer.Context,
    config_file: Annotated[str | None, typer.Option("--config-file", metavar="PATH", envvar="MACVTAPCTL_CONFIG_FILE",
                                                    help="DP_MACVTAP_CONF as a file (the agent's mounted "
                                                         "ConfigMap).")] = None,
    configmap: Annotated[str | None, typer.Option(
        "--configmap", metavar="[NAMESPACE/]NAME", envvar="MACVTAPCTL_CONFIGMAP",
        help="Read this ConfigMap from the API server as the agent does (the mounted file lags by the kubelet's "
             "sync period); --config-file when the API server does not answer.")] = None,
    device_plugin_dir: Annotated[str, typer.Option("--device-plugin-dir", envvar="MACVTAPCTL_DEVICE_PLUGIN_DIR",
                                                   help="The kubelet's device-plugin directory.")]
    = DEFAULTS.plugin_dir,
    owner: Annotated[int, typer.Option("--owner", help="Expected owner of /dev/tapN.")] = identity.QEMU_UID,
    group: Annotated[int, typer.Option("--group", help="Expected group of /dev/tapN.")] = identity.QEMU_GID,
) -> None:
    import json
    import os

    from macvtapctl.cli.common import application
    from macvtapctl.errors import ExitCode
    from macvtapctl.output import Printer

    # -o/--output is the global flag (also after the verb, or MACVTAPCTL_OUTPUT): one spelling, one meaning.
    output = application(ctx).output_format(("table", "json"))
    if os.geteuid() != 0:
        raise MacvtapctlError("agent check must run as root on the node (it creates a test macvtap link)")
    from macvtapctl.agent.check import FAIL, file_document, run_checks

    follow = _configmap(configmap, config_file)
    document = file_document(config_file)
    if follow is not None:  # the agent's rule: the API's document when it answers, else the mounted file
        from macvtapctl.agent.configmap_watch import ConfigMapWatch, in_cluster_available
        from macvtapctl.agent.deviceplugin.config_source import ConfigSource
        from macvtapctl.rules import dpconfig

        if in_cluster_available():
            watch = ConfigMapWatch(*follow, dpconfig.CONFIG_KEY, lambda: None)
            watch.list_once()
            document = ConfigSource(path=config_file, api=watch).current()
    results = run_checks(document=document, plugin_dir=device_plugin_dir, owner=owner, group=group)
    printer = Printer()
    if output == "json":
        printer.data(json.dumps({"ok": all(r.status != FAIL for r in results),
                                 "checks": [r.__dict__ for r in results]}, indent=2) + "\n")
    else:
        printer.table(["check", "status", "detail"], [[r.check, r.status, r.detail] for r in results])
    if any(r.status == FAIL for r in results):
        raise typer.Exit(int(ExitCode.FINDINGS))
