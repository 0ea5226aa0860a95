"""`vm create` without a cluster: output shapes and flag errors."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from macvtapctl.errors import ExitCode


def test_prints_yaml_ready_for_kubectl_apply(cli) -> None:
    r = cli("vm", "create", "web", "--network", "dataplane")
    assert r.exit_code == 0, r.stderr
    assert r.stderr == ""
    vm = yaml.safe_load(r.stdout)
    assert vm["kind"] == "VirtualMachine" and vm["metadata"]["name"] == "web"


def test_batch_is_a_yaml_stream_and_json_a_list(cli) -> None:
    r = cli("vm", "create", "web", "--network", "dp", "--count", "3", "--name-template", "web-{i}", "--mac", "auto")
    docs = list(yaml.safe_load_all(r.stdout))
    assert [d["metadata"]["name"] for d in docs] == ["web-1", "web-2", "web-3"]
    macs = {d["spec"]["template"]["spec"]["domain"]["devices"]["interfaces"][1]["macAddress"] for d in docs}
    assert len(macs) == 3
    doc = json.loads(cli("vm", "create", "web", "--network", "dp", "--count", "2", "-o", "json").stdout)
    assert doc["kind"] == "List" and len(doc["items"]) == 2


def test_namespace_only_when_given(cli) -> None:
    vm = yaml.safe_load(cli("vm", "create", "web", "--network", "dp", "-n", "prod").stdout)
    assert vm["metadata"]["namespace"] == "prod"


def test_ssh_key_file_and_password_file(cli, tmp_path: Path) -> None:
    keys = tmp_path / "keys.pub"
    keys.write_text("# comment\nssh-ed25519 AAAAC3 a@b\necdsa-sha2-nistp256 AAAAE c@d\n")
    pw = tmp_path / "pw"
    pw.write_text("s3cret\n")
    vm = yaml.safe_load(cli("vm", "create", "web", "--network", "dp", "--ssh-key", str(keys),
                            "--password-file", str(pw), "--user", "fedora").stdout)
    ud = yaml.safe_load(vm["spec"]["template"]["spec"]["volumes"][1]["cloudInitNoCloud"]["userData"])
    assert ud["ssh_authorized_keys"] == ["ssh-ed25519 AAAAC3 a@b", "ecdsa-sha2-nistp256 AAAAE c@d"]
    assert ud["password"] == "s3cret" and ud["user"] == "fedora"


@pytest.mark.parametrize(("args", "needle"), [
    (["Web"], '"Web"'),
    (["web", "--network", "Bad"], '"Bad"'),
    (["web", "--network", "dp", "--mac", "dp=01:00:00:00:00:01"], "multicast"),
    (["web", "--network", "dp", "--mac", "dp=nope"], '"nope"'),
    (["web", "--network", "dp", "--mac", "other=02:00:00:00:00:01"], "'other'"),
    (["web", "--network", "dp", "--ip", "dp=10.0.0.1"], "prefix length"),
    (["web", "--network", "dp", "--cpu", "0"], "--cpu 0"),
    (["web", "--network", "dp", "--memory", "1GB"], '"1GB"'),
    (["web", "--network", "dp", "--run-strategy", "Sometimes"], '"Sometimes"'),
    (["web", "--network", "dp", "--label", "novalue"], '"novalue"'),
    (["web", "--network", "dp", "--ssh-key", "not-a-key"], "OpenSSH public key"),
    (["web", "--network", "dp", "--password-file", "/nonexistent/pw"], "/nonexistent/pw"),
    (["web", "--network", "dp", "--count", "2", "--name-template", "web"], "{i}"),
    (["web", "--no-pod-network"], "no NIC"),
    (["web", "--network", "dp", "--offline", "--apply"], "--offline"),
    (["web", "--network", "dp", "--binding-name", "Mac_Vtap"], '"Mac_Vtap"'),
    (["web", "--network", "dp", "-o", "name"], "allowed formats"),
])
def test_flag_errors_are_one_line_usage_errors(cli, args: list[str], needle: str) -> None:
    r = cli("vm", "create", *args)
    assert r.exit_code == ExitCode.USAGE, r.stderr
    assert needle in r.stderr
    assert r.stderr.count("\n") == 1
    assert r.stdout == ""
