"""Global options, output formats, error formatting and exit codes (no cluster needed)."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest
import yaml

from macvtapctl import __version__
from macvtapctl.errors import ExitCode


def test_version_client_table(cli) -> None:
    r = cli("version", "--client")
    assert r.exit_code == 0
    # From a checkout: the release plus git describe (a wheel reports the release alone: tests/packaging).
    assert r.stdout.startswith(f"Client Version: v{__version__}-dev+g") and r.stdout.endswith("\n")
    assert r.stderr == ""


def test_version_client_json_and_yaml_have_the_same_data(cli) -> None:
    as_json = json.loads(cli("version", "--client", "-o", "json").stdout)
    as_yaml = yaml.safe_load(cli("-o", "yaml", "version", "--client").stdout)
    assert as_json == as_yaml
    assert as_json["clientVersion"]["release"] == f"v{__version__}"
    head = subprocess.run(["git", "rev-parse", "--short", "HEAD"], check=True, capture_output=True,
                          text=True).stdout.strip()
    assert as_json["clientVersion"]["gitVersion"].startswith(f"v{__version__}-dev+g{head}")
    assert "serverVersion" not in as_json


def test_global_options_work_after_the_subcommand(cli) -> None:
    assert json.loads(cli("version", "--client", "-ojson").stdout)["clientVersion"]
    assert json.loads(cli("version", "--output=json", "--client").stdout)["clientVersion"]


def test_unknown_output_format_gets_kubectls_message(cli) -> None:
    r = cli("version", "--client", "-o", "xml")
    assert r.exit_code == ExitCode.USAGE
    assert r.stdout == ""
    assert r.stderr == ('error: unable to match a printer suitable for the output format "xml", '
                        "allowed formats are: json,name,table,wide,yaml\n")


def test_format_the_command_does_not_support(cli) -> None:
    r = cli("version", "--client", "-o", "name")
    assert r.exit_code == ExitCode.USAGE
    assert r.stderr.strip().endswith("allowed formats are: json,table,yaml")


def test_every_global_option_has_an_env_var(cli) -> None:
    r = cli("version", "--client", env={"MACVTAPCTL_OUTPUT": "json"})
    assert json.loads(r.stdout)["clientVersion"]
    r = cli("version", "--client", env={"MACVTAPCTL_REQUEST_TIMEOUT": "bogus"})
    assert r.exit_code == ExitCode.USAGE
    assert '"bogus"' in r.stderr
    help_text = cli("--help", env={"COLUMNS": "200"}).stdout
    for var in ("MACVTAPCTL_KUBECONFIG", "MACVTAPCTL_CONTEXT", "MACVTAPCTL_NAMESPACE",
                "MACVTAPCTL_REQUEST_TIMEOUT", "MACVTAPCTL_OUTPUT", "MACVTAPCTL_VERBOSE", "MACVTAPCTL_QUIET"):
        assert var in help_text


def test_unknown_flag_is_one_line_with_usage_code(cli) -> None:
    r = cli("version", "--bogus")
    assert r.exit_code == ExitCode.USAGE
    assert r.stderr.count("\n") == 1
    assert r.stderr.startswith("error: unknown flag: --bogus")
    assert "macvtapctl version --help" in r.stderr


def test_unknown_command(cli) -> None:
    r = cli("frobnicate")
    assert r.exit_code == ExitCode.USAGE
    assert "frobnicate" in r.stderr


def test_dangling_flag(cli) -> None:
    r = cli("version", "-o")
    assert r.exit_code == ExitCode.USAGE
    assert r.stderr.startswith("error: flag needs an argument: -o")


def test_kubectl_plugin_name_in_messages(cli) -> None:
    r = cli("version", "--bogus", prog_name="kubectl macvtap")
    assert "kubectl macvtap version --help" in r.stderr
    assert "kubectl macvtap" in cli("--help", prog_name="kubectl macvtap").stdout


def test_program_name_detection() -> None:
    from macvtapctl.cli import program_name

    assert program_name("/usr/local/bin/kubectl-macvtap") == "kubectl macvtap"
    assert program_name("/usr/bin/macvtapctl") == "macvtapctl"


def test_missing_kubeconfig_is_one_clear_line(cli, tmp_path: Path) -> None:
    missing = tmp_path / "nope"
    r = cli("--kubeconfig", str(missing), "version")
    assert r.exit_code == ExitCode.USAGE
    # From a checkout: the release plus git describe (a wheel reports the release alone: tests/packaging).
    assert r.stdout.startswith(f"Client Version: v{__version__}-dev+g") and r.stdout.endswith("\n")
    assert r.stderr == f'error: kubeconfig "{missing}" does not exist (--kubeconfig)\n'


def test_traceback_only_when_verbose(cli, tmp_path: Path) -> None:
    missing = str(tmp_path / "nope")
    quiet = cli("--kubeconfig", missing, "version")
    assert "Traceback" not in quiet.stderr
    loud = cli("--kubeconfig", missing, "version", "-v")
    assert "Traceback" in loud.stderr
    assert loud.stderr.rstrip().endswith("does not exist (--kubeconfig)")
    debug = cli("--kubeconfig", missing, "version", env={"MACVTAPCTL_DEBUG": "1"})
    assert "Traceback" in debug.stderr


def test_no_color_when_not_a_tty(cli, tmp_path: Path) -> None:
    r = cli("--kubeconfig", str(tmp_path / "x"), "version", env={"NO_COLOR": ""})
    assert "\x1b[" not in r.stderr


def test_no_args_prints_help(cli) -> None:
    r = cli()
    assert r.exit_code == 0
    assert "version" in r.stdout


@pytest.mark.parametrize("args", [["-o", "yaml", "agent", "check"], ["agent", "check", "-o", "yaml"]])
def test_agent_check_takes_the_global_output_flag_in_either_position(cli, args: list[str]) -> None:
    """The root's -o must not be stolen from `agent check`, nor ignored by it: yaml is refused by agent check
    whichever side of the verb it is on (json and table are its formats)."""
    r = cli(*args)
    assert r.exit_code == ExitCode.USAGE
    assert r.stderr.strip() == ('error: unable to match a printer suitable for the output format "yaml", allowed '
                                "formats are: json,table")


def test_agent_check_output_from_the_environment(cli) -> None:
    r = cli("agent", "check", env={"MACVTAPCTL_OUTPUT": "yaml"})
    assert r.exit_code == ExitCode.USAGE and '"yaml"' in r.stderr
