"""`vm create`'s options object (cli/vm.py CreateOptions): the flags bound once, completed, validated into the
renderer's VMOptions before anything is rendered or sent, then run."""

from __future__ import annotations

from typing import Any

import pytest

from macvtapctl.cli import vm as cmd
from macvtapctl.cli.common import Application
from macvtapctl.cli.settings import Settings
from macvtapctl.errors import UsageError
from macvtapctl.kube.options import DryRun
from macvtapctl.manifests import vm as vmm
from macvtapctl.ops import vm as vmops

GOOD: dict[str, Any] = {
    "name": "web", "network": ["dp", "lan=infra/lan"], "ip": ["dp=192.0.2.10/24,192.0.2.1"], "mac": ["auto"],
    "label": ["app=web"], "instancetype": "u1.small", "volume_pvc": ["src:data"], "user": "fedora",
    "access_cred": ["src:keys"], "count": 2, "apply": True, "dry_run": "server",
}


class Forbidden(AssertionError):
    pass


@pytest.fixture
def nothing_after_validate(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Rendering, connecting and the cluster's use-cases record that they were called (and stop there)."""
    called: list[str] = []

    def forbid(what: str) -> Any:
        def call(*_a: Any, **_k: Any) -> Any:
            called.append(what)
            raise Forbidden(what)
        return call

    for target, attr in ((vmm, "render"), (vmm, "batch"), (Application, "connect"),
                         (vmops, "check_against_cluster"), (vmops, "apply_vms")):
        monkeypatch.setattr(target, attr, forbid(attr))
    return called


def completed(**flags: Any) -> cmd.CreateOptions:
    opts = cmd.CreateOptions(**flags)
    opts.complete(Application(Settings(namespace="prod")))
    return opts


def test_good_flags_validate_into_the_renderers_options_without_rendering(nothing_after_validate: list[str]) -> None:
    plan = completed(**GOOD).validate()
    assert nothing_after_validate == []
    assert plan.names == ["web-1", "web-2"]
    vm = plan.vm
    assert [(n.name, n.nad) for n in vm.networks] == [("dp", "dp"), ("lan", "infra/lan")]
    assert vm.namespace == "prod" and vm.labels == {"app": "web"} and vm.auto_mac and vm.macs == {}
    assert str(vm.ips["dp"].address) == "192.0.2.10/24"
    assert vm.instancetype == vmm.Matcher("VirtualMachineClusterInstancetype", "u1.small")
    assert vm.memory is None and vm.cpu is None  # the instance type sets them
    assert vm.image is None and [d.name for d in vm.disks] == ["data"]  # the volumes given are the disks
    assert [(c.secret, c.method) for c in vm.access_credentials] == [("keys", "ga")]


def test_complete_takes_the_mode_the_format_and_only_the_namespace_flag() -> None:
    opts = completed(**GOOD)
    assert (opts.dry, opts.fmt, opts.namespace) == (DryRun.SERVER, "table", "prod")
    with pytest.raises(UsageError, match='allowed formats'):
        cmd.CreateOptions(name="web").complete(Application(Settings(output="name")))  # -o name: only with --apply


@pytest.mark.parametrize(("bad", "line"), [
    ({"mac": ["auto", "dp=01:00:00:00:00:01"]}, "multicast"),
    ({"label": ["app=web", "novalue"]}, 'invalid --label "novalue": expected KEY=VALUE'),
    ({"memory": "2Gi"}, "--memory cannot be combined with --instancetype: the instance type sets it"),
    ({"volume_pvc": ["src:ns/claim"]}, 'invalid --volume-pvc "src:ns/claim": not allowed to specify the namespace'),
    ({"access_cred": ["type:token,src:x"]}, 'invalid --access-cred "type:token,src:x": type must be ssh or password'),
    ({"run_strategy": "Sometimes"}, 'invalid --run-strategy "Sometimes"'),
    ({"eviction_strategy": "Migrate"}, 'invalid --eviction-strategy "Migrate": must be one of LiveMigrate, '
                                       'LiveMigrateIfPossible, External, None'),
    ({"name_template": "web"}, 'invalid --name-template "web": it must contain {i}'),
    ({"concurrency": 0}, "invalid --concurrency 0: must be from 1 to 64"),
    ({"offline": True}, "--offline cannot be combined with --apply or --dry-run=server"),
])
def test_a_bad_flag_among_good_ones_stops_validate_before_anything_is_rendered_or_sent(
        nothing_after_validate: list[str], bad: dict[str, Any], line: str) -> None:
    with pytest.raises(UsageError) as err:
        completed(**{**GOOD, **bad}).validate()
    assert line in err.value.message and "\n" not in err.value.message
    assert nothing_after_validate == []


def test_create_validates_before_it_renders_or_connects(cli: Any, nothing_after_validate: list[str]) -> None:
    """Through the command: --apply with a bad flag is exit 2 and one line, nothing rendered, no connection."""
    r = cli("vm", "create", "web", "--network", "dp", "--apply", "--ip", "dp=10.0.0.2/24",
                "--label", "novalue")
    assert r.exit_code == 2 and r.stderr == 'error: invalid --label "novalue": expected KEY=VALUE\n'
    assert nothing_after_validate == []
    # The same flags, made good, reach the renderer first (and stop there: the spies end the run).
    r = cli("vm", "create", "web", "--network", "dp", "--apply", "--ip", "dp=10.0.0.2/24", "--label", "a=b")
    assert r.exit_code != 0 and nothing_after_validate == ["batch"]
