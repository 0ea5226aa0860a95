from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from macvtapctl import validate as v
from macvtapctl.errors import ExitCode, UsageError


@pytest.mark.parametrize("name", ["eth0", "enp129s0f0np0", "bond0.100", "a", "x" * 15, "br-ex_1"])
def test_valid_interface_names(name: str) -> None:
    assert v.check_interface_name(name) == name


@pytest.mark.parametrize(("name", "rule"), [
    ("", "empty"), ("x" * 16, "at most 15"), (".", "'.' or '..'"), ("..", "'.' or '..'"),
    ("eth/0", "'/'"), ("eth:0", "':'"), ("eth 0", "whitespace"), ("eth\t0", "whitespace"),
])
def test_invalid_interface_names(name: str, rule: str) -> None:
    with pytest.raises(UsageError) as info:
        v.check_interface_name(name, "lower device")
    assert f'"{name}"' in info.value.message
    assert rule in info.value.message
    assert info.value.exit_code == ExitCode.USAGE


@given(st.text(max_size=20))
def test_interface_rule_matches_the_kernels(name: str) -> None:
    ok = (0 < len(name) <= 15 and name not in (".", "..") and "/" not in name and ":" not in name
          and not any(c.isspace() for c in name))
    assert (v.interface_name_problem(name) is None) == ok


def test_resource_name_and_device_id_length() -> None:
    assert v.check_resource_name("dataplane", 100) == "dataplane"
    assert v.device_id("eth0", 3) == "eth0Mvp3"
    long = "a" * 59
    v.check_resource_name(long, 10)  # a...Mvp9 is 63 characters
    with pytest.raises(UsageError, match="exceed 63"):
        v.check_resource_name(long, 100)
    for bad in ("", "-x", "x-", "a/b", "a b"):
        with pytest.raises(UsageError):
            v.check_resource_name(bad)


def test_modes_capacity_mtu() -> None:
    for mode in ("bridge", "private", "vepa", "passthru"):
        assert v.check_mode(mode) == mode
    with pytest.raises(UsageError, match="bridge, private, vepa, passthru"):
        v.check_mode("source")
    assert v.check_capacity(1) == 1
    assert v.check_capacity(10000) == 10000
    for bad in (0, 10001, -5):
        with pytest.raises(UsageError, match=f"capacity {bad}"):
            v.check_capacity(bad)
    assert v.check_mtu(68) == 68
    with pytest.raises(UsageError, match="MTU 67"):
        v.check_mtu(67)
    with pytest.raises(UsageError, match="MTU 65536"):
        v.check_mtu(65536)


def test_dns_label() -> None:
    assert v.check_dns_label("web-1", "name") == "web-1"
    for bad in ("Web", "-a", "a-", "a_b", "a" * 64, ""):
        with pytest.raises(UsageError, match="DNS-1123 label"):
            v.check_dns_label(bad, "name")


@pytest.mark.parametrize("check", [
    lambda v_: v.check_dns_label(v_, "name"), lambda v_: v.check_dns_subdomain(v_, "name"),
    v.check_resource_name, v.check_unicast_mac, v.check_vm_network_name,
    lambda v_: v.check_quantity(v_, "--memory"),
])
def test_a_trailing_newline_is_never_valid(check) -> None:
    """Python's `$` matches before a final newline: every rule must use a full match."""
    for value in ("web\n", "02:00:00:00:00:01\n", "1Gi\n"):
        with pytest.raises(UsageError):
            check(value)


@given(st.text(max_size=12), st.integers(min_value=0, max_value=40))
def test_is_device_id_is_membership_in_the_advertised_ids(value: str, capacity: int) -> None:
    ids = {v.device_id("net", i) for i in range(capacity)}
    assert v.is_device_id(value, "net", capacity) == (value in ids)
    assert v.is_device_id(f"netMvp{value}", "net", capacity) == (f"netMvp{value}" in ids)


def test_is_device_id_edges() -> None:
    assert v.is_device_id("netMvp0", "net", 1) and v.is_device_id("netMvp999", "net", 1000)
    for bad in ("netMvp1000", "netMvp01", "netMvp-1", "netMvp", "netMvp\u0661", "otherMvp0", "netmvp0", "netMvp 1"):
        assert not v.is_device_id(bad, "net", 1000), bad
