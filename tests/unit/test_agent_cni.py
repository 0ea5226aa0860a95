"""CNI request parsing, results and errors (pure)."""

from __future__ import annotations

import json

import pytest

from macvtapctl.agent.cni import protocol as cni
from macvtapctl.agent.link_name import temporary_link_name

ENV = {"CNI_COMMAND": "ADD", "CNI_CONTAINERID": "c", "CNI_NETNS": "/run/netns/p", "CNI_IFNAME": "net1"}


def conf(**kw) -> bytes:
    return json.dumps({"cniVersion": "1.0.0", "name": "n", "type": "macvtap", "deviceID": "dpMvp0", **kw}).encode()


@pytest.mark.parametrize(("device_id", "name"), [("", "mvtdb3751d8e999"), ("abc", "mvt2cf5ad770999")])
def test_temporary_name_is_upstreams(device_id: str, name: str) -> None:
    """XXH64's published vectors (0xef46db3751d8e999 for "", 0x44bc2cf5ad770999 for "abc"): `mvt` + the low 48
    bits, as upstream's iface_name.go. (make compat checks it against upstream's device plugin itself.)"""
    assert temporary_link_name(device_id) == name and len(name) == 15


def test_parse_full_request() -> None:
    env = {**ENV, "CNI_ARGS": "IgnoreUnknown=true;K8S_POD_NAME=x;MAC=02:00:00:00:00:AA"}
    req = cni.parse_request(env, conf(mtu=1400, promiscMode=True, owner=0, group=36))
    assert (req.device_id, req.mtu, req.promisc, req.owner, req.group, req.mac) == (
        "dpMvp0", 1400, True, 0, 36, "02:00:00:00:00:aa")


def test_runtime_config_device_id_and_mac() -> None:
    body = json.dumps({"cniVersion": "1.1.0", "name": "n", "runtimeConfig": {"deviceID": "x", "mac": "02:00:00:00:00:01"}})
    req = cni.parse_request(ENV, body.encode())
    assert req.device_id == "x" and req.mac == "02:00:00:00:00:01" and req.owner == 107


@pytest.mark.parametrize(("env", "body", "code", "needle"), [
    ({**ENV, "CNI_COMMAND": "FROB"}, conf(), 4, "CNI_COMMAND"),
    ({**ENV, "CNI_IFNAME": "a/b"}, conf(), 4, "CNI_IFNAME"),
    ({k: v for k, v in ENV.items() if k != "CNI_NETNS"}, conf(), 4, "CNI_NETNS"),
    ({**ENV, "CNI_ARGS": "novalue"}, conf(), 4, "CNI_ARGS"),
    (ENV, b"{", 6, "decode"),
    (ENV, b'"str"', 6, "object"),
    (ENV, json.dumps({"name": "n"}).encode(), 7, "cniVersion"),
    (ENV, conf(cniVersion="0.2.1"), 1, "incompatible"),
    (ENV, json.dumps({"cniVersion": "1.0.0", "name": "n"}).encode(), 7, "deviceID is required"),
    (ENV, conf(deviceID=5), 7, "deviceID must be a string"),
    (ENV, conf(deviceID="x" * 300), 7, "longer than"),
    (ENV, conf(mtu="1500"), 7, "mtu must be an integer"),
    (ENV, conf(mtu=10), 7, "mtu must be from 68"),
    (ENV, conf(promiscMode="yes"), 7, "promiscMode"),
    (ENV, conf(owner=-2), 7, "owner"),
    (ENV, conf(mtu=-1), 7, "mtu must be from 68"),
    ({**ENV, "CNI_ARGS": "MAC=02-00-00:00:00:01"}, conf(), 7, "MAC"),
    ({**ENV, "CNI_ARGS": "MAC=01:00:00:00:00:01"}, conf(), 7, "unicast"),
    ({**ENV, "CNI_ARGS": "MAC=nope"}, conf(), 7, "MAC"),
    ({**ENV, "CNI_COMMAND": "CHECK"}, conf(cniVersion="0.3.1"), 1, "CHECK"),
    ({**ENV, "CNI_COMMAND": "GC"}, conf(cniVersion="1.0.0"), 1, "GC"),
])
def test_errors_name_the_key(env: dict, body: bytes, code: int, needle: str) -> None:
    with pytest.raises(cni.CniError) as info:
        cni.parse_request(env, body)
    assert info.value.code == code
    assert needle in info.value.msg + info.value.details


def test_unknown_keys_and_args_are_tolerated() -> None:
    env = {**ENV, "CNI_ARGS": "IgnoreUnknown=1;FOO=bar"}
    req = cni.parse_request(env, conf(lowerDevice="eth0", ipam={}, whatever=[1]))
    assert req.device_id == "dpMvp0"


def test_del_needs_no_netns_or_device() -> None:
    req = cni.parse_request({"CNI_COMMAND": "DEL", "CNI_CONTAINERID": "c", "CNI_IFNAME": "net1"},
                            json.dumps({"cniVersion": "0.4.0", "name": "n"}).encode())
    assert req.netns == "" and req.device_id == ""


def test_results_per_version_and_prev_result() -> None:
    for version in cni.SUPPORTED_VERSIONS:
        req = cni.parse_request(ENV, conf(cniVersion=version))
        res = cni.add_result(req, "02:00:00:00:00:01", 1500)
        assert res["cniVersion"] == version
        if version in ("0.1.0", "0.2.0"):  # no interfaces in those versions: upstream's result converts to DNS only
            assert res == {"cniVersion": version, "dns": {}}
            continue
        assert ("mtu" in res["interfaces"][0]) == (version == "1.1.0")
    prev = {"cniVersion": "1.0.0", "interfaces": [{"name": "eth0"}],
            "ips": [{"address": "10.0.0.2/24", "version": "4"}]}
    req = cni.parse_request(ENV, conf(prevResult=prev))
    res = cni.add_result(req, "02:00:00:00:00:01", 1500)
    assert [i["name"] for i in res["interfaces"]] == ["eth0", "net1"]
    assert res["ips"] == [{"address": "10.0.0.2/24"}]  # ips[].version does not exist in 1.0.0
    assert req.prev_result["ips"][0]["version"] == "4"  # input untouched


def test_error_json() -> None:
    err = cni.CniError(11, "try again", "busy")
    assert err.to_json("0.4.0") == {"cniVersion": "0.4.0", "code": 11, "msg": "try again", "details": "busy"}


def test_version_result() -> None:
    assert cni.version_result(b"") == {"cniVersion": "1.1.0", "supportedVersions": list(cni.SUPPORTED_VERSIONS)}
    assert cni.version_result(b'{"cniVersion":"0.4.0"}')["cniVersion"] == "0.4.0"


@pytest.mark.parametrize("version", ["0.1.0", "0.2.0", "0.3.0"])
def test_every_version_upstream_speaks_is_accepted(version: str) -> None:
    """Issue 13.1: upstream's CNI (CNI library v0.8.1) accepts 0.1.0-0.4.0; so does a drop-in."""
    assert cni.parse_request(ENV, conf(cniVersion=version)).version == version


@pytest.mark.parametrize(("given", "mac"), [
    ("02-00-00-00-00-AB", "02:00:00:00:00:ab"), ("0200.0000.00ab", "02:00:00:00:00:ab"),
    ("02:00:00:00:00:AB", "02:00:00:00:00:ab")])
def test_macs_in_every_form_go_reads(given: str, mac: str) -> None:
    assert cni.parse_request({**ENV, "CNI_ARGS": f"MAC={given}"}, conf()).mac == mac


def test_mtu_zero_and_owner_minus_one_mean_leave_as_is() -> None:
    """Go's zero value (mtu 0) leaves the MTU, and -1 is chown's "unchanged", as upstream passes it on."""
    req = cni.parse_request(ENV, conf(mtu=0, owner=-1, group=-1))
    assert (req.mtu, req.owner, req.group) == (None, -1, -1)
