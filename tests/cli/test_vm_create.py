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
    # --count with an explicit address or MAC: consecutive values, refused where they run out
    (["web", "--network", "dp", "--count", "3", "--ip", "dp=192.0.2.253/24"], "192.0.2.255 runs past the end of "
     "192.0.2.0/24"),
    (["web", "--network", "dp", "--count", "3", "--ip", "dp=192.0.2.5/24,192.0.2.6"], "192.0.2.6 is the gateway"),
    (["web", "--network", "dp", "--count", "2", "--mac", "dp=02:00:00:ff:ff:ff"], "first three bytes"),
    # virtctl's flags, with its rules
    (["web", "--network", "dp", "--instancetype", "small", "--memory", "2Gi"], "--memory cannot be combined"),
    (["web", "--network", "dp", "--instancetype", "small", "--cpu", "2"], "--cpu cannot be combined"),
    (["web", "--network", "dp", "--instancetype", "flavour/small"], 'kind "flavour"'),
    (["web", "--network", "dp", "--preference", "virtualmachinepreference/Bad"], '"Bad"'),
    (["web", "--network", "dp", "--volume-pvc", "name:x"], "src must be specified"),
    (["web", "--network", "dp", "--volume-pvc", "src:ns/claim"], "namespace of a PVC"),
    (["web", "--network", "dp", "--volume-containerdisk", "src:img,size:1Gi"], 'unknown parameter "size"'),
    (["web", "--network", "dp", "--volume-containerdisk", "src:img,bootorder:0"], "bootorder"),
    (["web", "--network", "dp", "--volume-containerdisk", "src:a,name:cloudinitdisk"], "'cloudinitdisk' is used"),
    (["web", "--network", "dp", "--volume-datasource", "src:ds,size:lots"], '"lots"'),
    (["web", "--network", "dp", "--count", "2", "--volume-datasource", "src:ds,name:root"], "same DataVolume"),
    (["web", "--network", "dp", "--cloud-init-user-data", "%%%"], "not valid base64"),
    (["web", "--network", "dp", "--cloud-init-user-data", "I2Nsb3VkLWNvbmZpZwo=", "--user", "u"], "used as given"),
    (["web", "--network", "dp", "--cloud-init-network-data", "e30=", "--ip", "dp=10.0.0.2/24"], "used as given"),
    (["web", "--network", "dp", "--cloud-init", "configdrive"], "nocloud or none"),
    (["web", "--network", "dp", "--access-cred", "src:keys"], "method ga needs a user"),
    (["web", "--network", "dp", "--access-cred", "type:password,src:pw,user:u"], "only valid with type ssh"),
    (["web", "--network", "dp", "--access-cred", "type:token,src:x"], "ssh or password"),
    (["web", "--network", "dp", "--termination-grace-period", "-1"], "0 or more"),
    (["web", "--network", "dp", "--run-strategy", "WaitAsReceiver"], '"WaitAsReceiver"'),
])
def test_flag_errors_are_one_line_usage_errors(cli, args: list[str], needle: str) -> None:
    r = cli("vm", "create", *args)
    assert r.exit_code == ExitCode.USAGE, r.stderr
    assert needle in r.stderr
    assert r.stderr.count("\n") == 1
    assert r.stdout == ""


def vm_spec(r) -> dict:
    assert r.exit_code == 0, r.stderr
    return yaml.safe_load(r.stdout)["spec"]


def test_batches_count_addresses_and_macs_up(cli) -> None:
    r = cli("vm", "create", "s", "--network", "dp", "--count", "3", "--ip", "dp=2001:db8::a/64,2001:db8::1",
            "--mac", "dp=02:00:00:00:00:fe")
    docs = list(yaml.safe_load_all(r.stdout))
    got = []
    for d in docs:
        spec = d["spec"]["template"]["spec"]
        net = yaml.safe_load(spec["volumes"][1]["cloudInitNoCloud"]["networkData"])["ethernets"]["dp"]
        got.append((net["addresses"], spec["domain"]["devices"]["interfaces"][1]["macAddress"]))
    assert got == [(["2001:db8::a/64"], "02:00:00:00:00:fe"), (["2001:db8::b/64"], "02:00:00:00:00:ff"),
                   (["2001:db8::c/64"], "02:00:00:00:01:00")]


def test_virtctl_flags_render_as_virtctl_does(cli, tmp_path: Path) -> None:
    spec = vm_spec(cli("vm", "create", "web", "--network", "dp", "--instancetype", "u1.medium",
                       "--preference", "virtualmachinepreference/fedora", "--volume-containerdisk",
                       "src:quay.io/containerdisks/fedora:41,bootorder:1", "--volume-pvc", "src:data",
                       "--volume-datasource", "src:os/fedora,size:20Gi", "--termination-grace-period", "5",
                       "--user", "fedora", "--access-cred", "src:keys",
                       "--access-cred", "type:ssh,src:more,method:nocloud"))
    assert spec["instancetype"] == {"kind": "VirtualMachineClusterInstancetype", "name": "u1.medium"}
    assert spec["preference"] == {"kind": "VirtualMachinePreference", "name": "fedora"}
    assert spec["dataVolumeTemplates"] == [{"metadata": {"name": "web-datasource-0"}, "spec": {
        "sourceRef": {"kind": "DataSource", "name": "fedora", "namespace": "os"},
        "storage": {"resources": {"requests": {"storage": "20Gi"}}}}}]
    tpl = spec["template"]["spec"]
    assert "cpu" not in tpl["domain"] and "memory" not in tpl["domain"]  # the instance type sets them
    assert tpl["domain"]["devices"]["disks"] == [
        {"name": "containerdisk-0", "disk": {"bus": "virtio"}, "bootOrder": 1},
        {"name": "data", "disk": {"bus": "virtio"}}, {"name": "datasource-0", "disk": {"bus": "virtio"}},
        {"name": "cloudinitdisk", "disk": {"bus": "virtio"}}]
    assert [v["name"] for v in tpl["volumes"]] == ["containerdisk-0", "data", "datasource-0", "cloudinitdisk"]
    assert tpl["volumes"][1] == {"name": "data", "persistentVolumeClaim": {"claimName": "data"}}
    assert tpl["volumes"][2] == {"name": "datasource-0", "dataVolume": {"name": "web-datasource-0"}}
    assert tpl["terminationGracePeriodSeconds"] == 5
    assert tpl["accessCredentials"] == [
        {"sshPublicKey": {"source": {"secret": {"secretName": "keys"}},
                          "propagationMethod": {"qemuGuestAgent": {"users": ["fedora"]}}}},
        {"sshPublicKey": {"source": {"secret": {"secretName": "more"}}, "propagationMethod": {"noCloud": {}}}}]
    user_data = yaml.safe_load(tpl["volumes"][3]["cloudInitNoCloud"]["userData"])
    assert user_data["runcmd"] == [["setsebool", "-P", "virt_qemu_ga_manage_ssh", "on"]]  # as virtctl's


def test_cloud_init_base64_is_used_as_given_and_none_means_none(cli) -> None:
    tpl = vm_spec(cli("vm", "create", "web", "--network", "dp", "--cloud-init-user-data", "I2Nsb3VkLWNvbmZpZwo=",
                      "--cloud-init-network-data", "e30="))["template"]["spec"]
    assert tpl["volumes"][1]["cloudInitNoCloud"] == {"userDataBase64": "I2Nsb3VkLWNvbmZpZwo=",
                                                     "networkDataBase64": "e30="}
    tpl = vm_spec(cli("vm", "create", "web", "--network", "dp", "--cloud-init", "none"))["template"]["spec"]
    assert [v["name"] for v in tpl["volumes"]] == ["containerdisk"]
    assert [d["name"] for d in tpl["domain"]["devices"]["disks"]] == ["containerdisk"]
