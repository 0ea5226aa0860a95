from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from macvtapctl.cli.settings import DryRun, check_output_format, parse_dry_run, parse_request_timeout
from macvtapctl.errors import ExitCode, UsageError


@pytest.mark.parametrize(("text", "seconds"), [
    ("0", None), ("", None), (None, None), ("5", 5.0), ("2.5", 2.5), ("10s", 10.0), ("2m", 120.0),
    ("1h", 3600.0), ("500ms", 0.5), ("1m30s", 90.0),
])
def test_request_timeout_durations(text: str | None, seconds: float | None) -> None:
    assert parse_request_timeout(text) == seconds


@pytest.mark.parametrize("text", ["5x", "s", "1m30", "-1s", "abc", "1 s"])
def test_request_timeout_rejects_garbage_naming_the_value(text: str) -> None:
    with pytest.raises(UsageError) as info:
        parse_request_timeout(text)
    assert f'"{text}"' in info.value.message
    assert info.value.exit_code == ExitCode.USAGE


@given(st.integers(min_value=1, max_value=10**6))
def test_request_timeout_seconds_roundtrip(n: int) -> None:
    assert parse_request_timeout(f"{n}s") == n
    assert parse_request_timeout(str(n)) == n


def test_output_format_message_is_kubectls() -> None:
    with pytest.raises(UsageError) as info:
        check_output_format("xml", ("table", "json", "yaml"))
    assert info.value.message == (
        'unable to match a printer suitable for the output format "xml", allowed formats are: json,table,yaml')
    assert check_output_format(None) == "table"
    assert check_output_format("wide") == "wide"


def test_dry_run_values() -> None:
    assert parse_dry_run(None) is DryRun.NONE
    assert parse_dry_run("server") is DryRun.SERVER
    assert DryRun.SERVER.suffix == " (server dry run)"
    assert DryRun.CLIENT.suffix == " (dry run)"
    with pytest.raises(UsageError, match='"maybe"'):
        parse_dry_run("maybe")
