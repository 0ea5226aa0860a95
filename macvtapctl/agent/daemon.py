"""`macvtapctl agent`: asyncio wiring of the CNI server, the device plugin, health/metrics and signals."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import sys
from collections.abc import Callable
from typing import Any

from macvtapctl import identity
from macvtapctl.agent.cni import datapath
from macvtapctl.agent.cni.protocol import CniError
from macvtapctl.agent.config import AgentConfig
from macvtapctl.agent.configmap_watch import ConfigMapWatch
from macvtapctl.agent.deviceplugin.config_source import ConfigSource
from macvtapctl.agent.link_registry import LinkRegistry

log = logging.getLogger("macvtapctl.agent")


def _ours(record: logging.LogRecord) -> bool:
    """Debug output of our own code only: pyroute2 and grpc debug-log every message."""
    return record.levelno >= logging.WARNING or record.name.startswith("macvtapctl")


def setup_logging(level: str) -> None:
    logging.basicConfig(stream=sys.stderr, level=getattr(logging, level.upper(), logging.INFO),
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    for handler in logging.getLogger().handlers:
        handler.addFilter(_ours)


async def run(cfg: AgentConfig) -> None:
    from macvtapctl.agent.observability import HealthServer, Metrics

    # BlockingNetlink work runs in threads next to the event loop and gRPC's poller: a short GIL switch interval
    # (default 5 ms) keeps a thread coming back from a syscall from waiting behind them.
    sys.setswitchinterval(0.0005)
    from macvtapctl.agent.cni.server import CniServer

    metrics = Metrics()
    registry = LinkRegistry(grace=cfg.gc_min_age)
    owned = _owned_reader(cfg.pod_resources_socket)

    handoff, handoff_off, is_target = _migration(cfg, registry, metrics)

    def handle(env: dict[str, str], stdin: bytes) -> tuple[int, bytes]:
        code, out = datapath.handle(env, stdin, registry, tap_dir=cfg.tap_dir,
                                    on_reclaim=metrics.reclaimed.inc, owned=owned, is_target=is_target)
        return code, out

    def reclaim() -> None:
        reclaimed = datapath.gc(registry, owned())
        if reclaimed:
            metrics.reclaimed.inc(len(reclaimed))
        datapath.adopt(registry)  # links attached before a take-over, or before this agent restarted

    def observe_cni(command: str, result: str, seconds: float) -> None:
        metrics.cni.labels(command=command, result=result).observe(seconds)

    server = CniServer(cfg.cni_socket, handle, workers=cfg.workers, observe=observe_cni)
    watch = _configmap_watch(cfg)
    source = ConfigSource(path=cfg.config_file, api=watch, on_read=metrics.config_read)
    manager = None
    if cfg.device_plugin:
        from macvtapctl.agent.deviceplugin.allocator import make_allocator
        from macvtapctl.agent.deviceplugin.manager import Manager

        lookup: list[Manager] = []
        manager = Manager(source, cfg.plugin_dir,
                          make_allocator(registry, cfg.tap_dir, lambda name: lookup[0].lower(name) if lookup else None),
                          veth_is_physical=cfg.veth_is_physical,
                          observe=lambda result, s: metrics.allocate.labels(result=result).observe(s),
                          on_devices=lambda name, n: metrics.devices.labels(resource=name).set(n))
        lookup.append(manager)
    if watch is not None:
        watch.on_change = manager.config_changed if manager is not None else (lambda: None)
        watch.start()
        # The first configuration from the API when it answers soon, not from a file a sync period old.
        await asyncio.to_thread(watch.answered.wait, FIRST_ANSWER_WAIT)

    def alive() -> tuple[bool, str]:
        try:
            datapath.status()
        except CniError as exc:
            return False, exc.msg
        return True, "ok"

    def ready() -> tuple[bool, str]:
        ok, why = alive()
        if not ok:
            return ok, why
        return manager.readiness() if manager is not None else (True, "ok")

    def plugins() -> dict[str, Any]:
        return kubelet_plugins(cfg.plugin_dir, [p.resource for p in list(manager.plugins.values())]
                               if manager is not None else [])

    report = NodeReport(cfg, source, handoff.recent if handoff is not None else list, registry.attached_links,
                        handoff_off, plugins, registry.parked_links)
    health = HealthServer(cfg.metrics_host, cfg.metrics_port, metrics, ready, alive, report=report.latest,
                          probe_dhcp=lambda resource: probe_dhcp(cfg, source, resource)) if cfg.metrics_port else None
    loops = [report.loop] if cfg.report_interval and cfg.metrics_port else []
    try:
        await _serve(server, health, manager, reclaim if cfg.reclaim_interval else None, cfg.reclaim_interval,
                     loops)
    finally:
        if watch is not None:
            watch.stop()
        if handoff is not None:
            handoff.stop()


FIRST_ANSWER_WAIT = 3.0


def _adopt_at_start(registry: LinkRegistry, *, park: bool) -> None:
    """The pods' links attached before this agent ran (by it before a restart, or by macvtap-cni before a
    take-over): known to the hand-off from the start; with `park`, the agent's own links that are down (a
    migration target parked before a restart) are watched again, or they would stay down."""
    try:
        datapath.adopt(registry, park_down=park)
    except Exception:  # the hand-off then knows only the links attached from now on; the agent still serves
        log.exception("cannot read the pods' links at start")
PROC_NET_UNIX = "/proc/net/unix"  # the node's: the agent runs in the host's network namespace


def kubelet_plugins(plugin_dir: str, advertised: list[str], proc_net_unix: str = PROC_NET_UNIX) -> dict[str, Any]:
    """The macvtap device plugins the kubelet is connected to, by resource (rules/plugin_sockets.py): what
    `uninstall --restore-upstream` waits for before the agent leaves a node."""
    from macvtapctl.rules.plugin_sockets import kubelet_plugins as of

    try:
        with open(proc_net_unix, encoding="utf-8", errors="replace") as f:
            text = f.read()
    except OSError as exc:  # said, not raised: the rest of the report stands
        log.warning("cannot read %s: %s", proc_net_unix, exc)
        text = ""
    return of(text, plugin_dir, advertised)


def _event_recorder(cfg: AgentConfig) -> Any:
    """The hand-off's Events on VMIs (agent/events.py), where the pod has its service-account token; not started."""
    from macvtapctl.agent.configmap_watch import in_cluster_available
    from macvtapctl.agent.events import EventRecorder

    return EventRecorder(cfg.node_name) if in_cluster_available() else None


def _migration(cfg: AgentConfig, registry: LinkRegistry, metrics: Any
               ) -> tuple[Any, str | None, Callable[[tuple[str, str] | None], bool] | None]:
    """The hand-off (or None and why not), the pods' links known to it from the start, and whether an ADD's pod is
    a migration target: only where the hand-off runs to set a parked link up (docs/migration.md)."""
    handoff, why = _handoff(cfg, registry, metrics)
    _adopt_at_start(registry, park=handoff is not None)
    return handoff, why, _target_lookup() if handoff is not None else None


def _target_lookup() -> Callable[[tuple[str, str] | None], bool] | None:
    """Whether an ADD's pod is a migration target (agent/migration_target.py), where the pod has its
    service-account token; elsewhere every link is attached up."""
    from macvtapctl.agent.configmap_watch import in_cluster_available
    from macvtapctl.agent.migration_target import TargetLookup

    return TargetLookup() if in_cluster_available() else None


def _handoff(cfg: AgentConfig, registry: LinkRegistry, metrics: Any) -> tuple[Any, str | None]:
    """The migration hand-off (agent/handoff.py), or None and why not (said once, and in the node report) where
    packet sockets are refused."""
    from macvtapctl.agent.handoff import HandOff, NamespaceLinks

    recorder = _event_recorder(cfg)
    try:
        handoff = HandOff(registry, NamespaceLinks(), metrics.handoffs.inc, metrics.handoffs_reverted.inc,
                          on_target_up=metrics.targets_up.inc,
                          **({"tell": recorder.tell} if recorder is not None else {}))
    except OSError as exc:
        why = f"cannot open a packet socket ({exc}; the agent needs NET_RAW)"
        log.warning("no migration hand-off on this node: %s", why)
        return None, why
    if recorder is not None:
        recorder.start()  # a daemon thread: it ends with the agent
    handoff.start()
    return handoff, None


def _configmap_watch(cfg: AgentConfig) -> ConfigMapWatch | None:
    from macvtapctl.agent.configmap_watch import in_cluster_available
    from macvtapctl.rules import dpconfig

    if cfg.configmap is None:
        return None
    if not in_cluster_available():
        log.warning("--configmap %s/%s: no service-account token or KUBERNETES_SERVICE_HOST in this pod; following "
                    "the mounted file only (%s)", *cfg.configmap, cfg.config_file)
        return None
    return ConfigMapWatch(*cfg.configmap, dpconfig.CONFIG_KEY, lambda: None)


def probe_dhcp(cfg: AgentConfig, source: ConfigSource, resource: str) -> tuple[int, dict[str, Any]]:
    """GET /probe/dhcp?resource=R (doctor --probe-dhcp): a DHCPDISCOVER on R's lower device, in the health server's
    thread. Only a resource of the current configuration: the caller never names a link."""
    from macvtapctl import validate
    from macvtapctl.agent import check, dhcp_probe
    from macvtapctl.agent.netlink import host
    from macvtapctl.errors import UsageError

    try:
        validate.check_resource_name(resource)
    except UsageError as exc:
        return 400, {"error": exc.message}
    config, where = check.read_config(source.document())
    if config is None:
        return 503, {"error": where}
    entry = None if config.expose_all else config.find(resource)
    lower = resource if config.expose_all else str(entry.get("lowerDevice")) if entry else None
    if lower is None:
        return 404, {"error": f"resource {resource!r} is not in this node's configuration ({where}); exposed: "
                              f"{', '.join(config.names()) or 'none'}"}
    offer = dhcp_probe.probe(host(), lower)
    log.info("DHCP probe on %s (resource %s): %s", lower, resource, offer.detail)
    return 200, {"node": cfg.node_name, "resource": resource, **offer.as_dict()}


class NodeReport:
    """The node checks `doctor` reads (GET /doctor), run every report_interval in a thread (netlink, sysfs)."""

    def __init__(self, cfg: AgentConfig, source: ConfigSource, handoffs: Callable[[], list[dict[str, Any]]] = list,
                 links: Callable[[], list[dict[str, str]]] = list, handoff_off: str | None = None,
                 plugins: Callable[[], dict[str, Any]] = dict, parked: Callable[[], list[dict[str, str]]] = list
                 ) -> None:
        self.cfg = cfg
        self.parked = parked  # migration targets' links held down until their guest runs here
        self.source = source
        # Read at each request, not once a minute: a hand-off, and which links are in the L2 domain, are news the
        # moment they change (doctor's migration-source-up compares them with where KubeVirt runs each VM); which
        # plugins the kubelet is connected to is what a give-back waits on before the agent leaves.
        self.handoffs, self.links, self.handoff_off, self.plugins = handoffs, links, handoff_off, plugins
        self.report: dict[str, Any] | None = None
        self.visibility: Any = None  # measured once (it creates a link and a /dev/tapN), when there is a lower

    def latest(self) -> dict[str, Any] | None:
        if self.report is None:
            return None
        handoff = {"enabled": self.handoff_off is None, **({"why": self.handoff_off} if self.handoff_off else {})}
        return {**self.report, "handoff": handoff, "handoffs": self.handoffs(), "links": self.links(),
                "parked": self.parked(), "plugins": self.plugins()}

    def once(self) -> None:
        from macvtapctl.agent import check

        cfg = self.cfg
        if self.visibility is None:  # first round: a previous agent killed mid-test may have left its link
            from macvtapctl.agent.netlink import host

            for name in check.remove_check_leftovers(host()):
                log.info("deleted %s, a test link a killed node check left behind", name)
        # The document the device plugin serves (the API's or the file's, by the same rule), and where it is from.
        report = check.node_report(cfg.node_name, document=self.source.document(), plugin_dir=cfg.plugin_dir,
                                   owner=identity.QEMU_UID, group=identity.QEMU_GID, cni_bin_dir=cfg.cni_bin_dir,
                                   tap_dir=cfg.tap_dir, visibility=self.visibility)
        report["configSource"] = self.source.state()
        if self.visibility is None:  # measured again while skipped: a lower device may be configured later
            found = [c for c in report["checks"] if c.get("id") == "kind-dev" and c.get("status") != check.SKIP]
            self.visibility = check.Result(**found[0]) if found else None
        self.report = report

    async def loop(self) -> None:
        while True:
            try:
                await asyncio.to_thread(self.once)
            except Exception:  # a bad round must not stop the next one
                log.exception("node checks failed")
            await asyncio.sleep(self.cfg.report_interval)


async def run_uninstall(cfg: AgentConfig, bin_dir: str | None) -> None:
    """`macvtapctl uninstall` (and `uninstall --restore-upstream`) rolls the DaemonSet to this mode on every node
    before deleting it: take the shim out of the CNI bin dir,
    delete every temporary link no live pod owns (none at all if the kubelet cannot say), advertise nothing,
    report ready, and wait to be deleted."""
    from macvtapctl.agent import cni_bin
    from macvtapctl.agent.observability import HealthServer, Metrics

    if bin_dir is not None:
        removed = cni_bin.uninstall(bin_dir)
        log.info("%s/%s %s", bin_dir, cni_bin.PLUGIN_NAME, "removed" if removed else "not ours or absent; left")
    owned = _owned_reader(cfg.pod_resources_socket)()
    if owned is None:
        log.warning("the kubelet cannot say which links live pods own: no link deleted")
    else:
        reclaimed = await asyncio.to_thread(datapath.gc, LinkRegistry(grace=0), owned)
        log.info("uninstall: %d link(s) no pod owns deleted", len(reclaimed))

    def done() -> tuple[bool, str]:
        return True, "uninstalled"

    health = HealthServer(cfg.metrics_host, cfg.metrics_port, Metrics(), done, done) if cfg.metrics_port else None
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    if health is not None:
        await health.start()
    log.info("uninstalled from this node; waiting to be deleted")
    await stop.wait()
    if health is not None:
        await health.stop()


def _owned_reader(socket_path: str) -> Callable[[], set[str] | None]:
    """Device IDs live pods own, per the kubelet; None (logged once per outage) when it cannot be asked."""
    from macvtapctl.agent.deviceplugin import podresources

    state = {"down": False}

    def owned() -> set[str] | None:
        try:
            ids = podresources.owned_device_ids(socket_path)
        except podresources.Unavailable as exc:
            if not state["down"]:
                log.warning("cannot ask the kubelet which devices live pods own (%s): no link is "
                            "reclaimed until it answers", exc)
            state["down"] = True
            return None
        if state["down"]:
            log.info("the kubelet's pod-resources API answers again")
        state["down"] = False
        return ids

    return owned


async def _reclaim_loop(reclaim: Callable[[], None], interval: float) -> None:
    while True:
        await asyncio.sleep(interval)
        try:
            await asyncio.to_thread(reclaim)
        except Exception:  # a bad round must not stop the next one
            log.exception("reclaiming links failed")


class AgentFailed(Exception):
    """A part of the agent stopped for good: the process must exit non-zero."""


async def _serve(server: Any, health: Any, manager: Any, reclaim: Callable[[], None] | None = None,
                 interval: float = 0, loops: list[Callable[[], Any]] | None = None) -> None:
    """Run until SIGTERM/SIGINT (or the device plugin fails), then stop serving and remove every socket."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    await server.start()
    if health is not None:
        await health.start()
    dp_task = asyncio.create_task(manager.run()) if manager is not None else None
    reclaimer = asyncio.create_task(_reclaim_loop(reclaim, interval)) if reclaim is not None else None
    background = [asyncio.create_task(loop()) for loop in loops or []]
    log.info("agent ready")
    stopper = asyncio.create_task(stop.wait())
    waiting = {stopper} | ({dp_task} if dp_task else set())
    done, _ = await asyncio.wait(waiting, return_when=asyncio.FIRST_COMPLETED)
    failure = dp_task.exception() if dp_task is not None and dp_task in done else None
    if failure is not None:
        log.error("device plugin failed", exc_info=failure)
    log.info("shutting down")
    if reclaimer is not None:
        reclaimer.cancel()
    for task in background:
        task.cancel()
    if dp_task is not None and not dp_task.done():
        dp_task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await dp_task
    if manager is not None:
        await manager.stop()  # removes the plugin sockets
    if health is not None:
        await health.stop()
    await server.stop()
    if failure is not None:  # exit non-zero: the kubelet restarts the container, and the restart is visible
        raise AgentFailed(f"the device plugin failed: {failure}")
    stopper.cancel()
