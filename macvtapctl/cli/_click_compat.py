"""The Click exception types. Pinned to a Typer that still uses the click package: newer Typer releases
validate every parameter through pydantic, which costs ~170 ms on every start (and every TAB press)."""

from __future__ import annotations

from click import exceptions as _exc

UsageError = _exc.UsageError
NoArgsIsHelpError: type[_exc.UsageError] = _exc.NoArgsIsHelpError


def click_exceptions() -> tuple[type[BaseException], ...]:
    return (_exc.ClickException, _exc.Exit, _exc.Abort)
