from __future__ import annotations

import pytest

from macvtapctl.cli.argv import hoist_global_options
from macvtapctl.errors import UsageError


@pytest.mark.parametrize(("args", "expected"), [
    (["version", "-o", "json"], ["-o", "json", "version"]),
    (["version", "-ojson", "--client"], ["-ojson", "version", "--client"]),
    (["version", "--output=yaml", "-n", "ns"], ["--output=yaml", "-n", "ns", "version"]),
    (["-v", "version"], ["-v", "version"]),
    (["version", "-vv"], ["-vv", "version"]),
    (["version", "--kubeconfig", "/k", "--context", "c"], ["--kubeconfig", "/k", "--context", "c", "version"]),
    (["version", "--", "-o", "json"], ["version", "--", "-o", "json"]),
    # `agent check` reads the global -o (it declares none of its own): both positions mean the same
    (["agent", "check", "-o", "json"], ["-o", "json", "agent", "check"]),
    (["-o", "json", "agent", "check"], ["-o", "json", "agent", "check"]),
    (["agent", "--log-level", "debug"], ["agent", "--log-level", "debug"]),
    (["version", "--client"], ["version", "--client"]),
])
def test_hoisting(args: list[str], expected: list[str]) -> None:
    assert hoist_global_options(args) == expected


def test_dangling_global_option_is_a_usage_error() -> None:
    with pytest.raises(UsageError, match="flag needs an argument: -o"):
        hoist_global_options(["version", "-o"])


def test_hoisting_keeps_relative_order_of_the_rest() -> None:
    args = ["vm", "create", "web", "-n", "prod", "--network", "a", "--network", "b"]
    assert hoist_global_options(args) == ["-n", "prod", "vm", "create", "web", "--network", "a", "--network", "b"]


def test_a_spelling_a_sub_command_declares_is_never_taken_from_it() -> None:
    """Issue 12: a future `macvtapctl foo --namespace-less -n X` must keep its own -n (and -vv its own -v)."""
    assert hoist_global_options(["foo", "-n", "x", "-o", "json"], declared={"-n"}) == ["-o", "json", "foo", "-n", "x"]
    assert hoist_global_options(["foo", "-vv"], declared={"-v"}) == ["foo", "-vv"]
    assert hoist_global_options(["-n", "y", "foo", "-n", "x"], declared={"-n"}) == ["-n", "y", "foo", "-n", "x"]


@pytest.mark.parametrize(("args", "path"), [
    (["-n", "x", "vm", "create", "web"], ["vm", "create"]), (["agent", "--log-level", "debug"], ["agent"]),
    (["-ojson", "agent", "check"], ["agent", "check"]), ([], [])])
def test_the_command_path_skips_global_options(args: list[str], path: list[str]) -> None:
    from macvtapctl.cli.argv import command_path

    assert command_path(args) == path
