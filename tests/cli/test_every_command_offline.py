"""Every command's flag parsing and input errors, offline: one line on stderr naming the value and the rule, exit
code 2, nothing on stdout — before any connection is attempted (the kubeconfig points nowhere)."""

from __future__ import annotations

import pytest

from macvtapctl.cli import COMMANDS
from macvtapctl.errors import ExitCode

NOWHERE = ("--kubeconfig", "/nonexistent/kubeconfig")

CASES = [
    (["version", "-o", "xml"], '"xml"'),
    (["enable", "--binding-name", "Bad"], 'invalid binding name "Bad"'),
    (["enable", "--kubevirt-version", "one"], 'invalid --kubevirt-version "one"'),
    (["disable", "--binding-name", "a_b"], 'invalid binding name "a_b"'),
    (["expose", "eth/0"], 'invalid lower device "eth/0"'),
    (["expose", "eth0", "--mode", "source"], 'invalid mode "source"'),
    (["expose", "eth0", "--dp-namespace", "Bad_NS"], '"Bad_NS"'),
    (["unexpose"], "Missing argument 'NAME'"),
    (["exposed", "-o", "name"], '"name"'),
    (["setup", "eth0", "--nad", "Bad"], 'invalid NAD name "Bad"'),
    (["rbac", "--user", "a", "--group", "b"], "at most one of --user, --group and --serviceaccount"),
    (["rbac", "--serviceaccount", "nons"], 'invalid --serviceaccount "nons"'),
    (["rbac", "--configmap", "Bad"], 'invalid --configmap "Bad"'),
    (["nad", "create", "n", "--resource", "r", "--mtu", "10"], "invalid MTU 10"),
    (["nad", "create", "n", "--resource", "r", "--cni-version", "2.0.0"], 'invalid --cni-version "2.0.0"'),
    (["nad", "list", "-o", "xml"], '"xml"'),
    (["nad", "delete"], "Missing argument 'NAME'"),
    (["vm", "create", "web", "--network", "dp", "--cpu", "0"], "invalid --cpu 0"),
    (["vm", "create", "web", "--network", "dp", "--user", "root\nruncmd: [x]"], "invalid --user"),
    (["vm", "check"], "give a VM NAME, or --all"),
    (["vm", "convert"], "give a VM NAME, or --all"),
    (["install", "--via", "helm"], 'invalid --via "helm"'),
    (["install", "--image", "a b"], 'invalid --image "a b"'),
    (["uninstall", "-n", "Bad_NS"], '"Bad_NS"'),
    (["status", "-o", "name"], '"name"'),
    (["doctor", "-o", "name"], '"name"'),
    (["doctor", "web", "-A"], "not both"),
    (["kind-config", "--nodes", "0"], "invalid --nodes 0"),
    (["agent", "--workers", "0"], "invalid --workers 0"),
    (["agent", "--log-level", "loud"], 'invalid --log-level "loud"'),
    (["agent", "--metrics-address", "nope"], 'invalid --metrics-address "nope"'),
]


@pytest.mark.parametrize(("args", "needle"), CASES, ids=[" ".join(c[0])[:40] for c in CASES])
def test_bad_input_is_one_line_exit_2_and_nothing_else(cli, args: list[str], needle: str) -> None:
    r = cli(*NOWHERE, *args)
    assert r.exit_code == ExitCode.USAGE, r.stderr
    assert needle in r.stderr and r.stderr.count("\n") == 1, r.stderr
    assert r.stdout == ""


def test_every_command_is_covered() -> None:
    assert {c[0][0] for c in CASES} == set(COMMANDS)


@pytest.mark.parametrize("name", sorted(COMMANDS))
def test_every_command_has_help_starting_with_its_summary(cli, name: str) -> None:
    r = cli(name, "--help")
    assert r.exit_code == 0
    lines = r.stdout.splitlines()
    first = next(line.strip() for line in lines[1:] if line.strip())  # after "Usage: ..."
    assert first == COMMANDS[name].summary
