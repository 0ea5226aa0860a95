"""The Click exception types, from Typer's vendored copy (Typer >= 0.26 bundles Click)."""

from __future__ import annotations

from typer import exceptions as _typer_exc
from typer._click import exceptions as _exc

UsageError = _exc.UsageError
NoArgsIsHelpError = _exc.NoArgsIsHelpError


def click_exceptions() -> tuple[type[BaseException], ...]:
    return (_exc.ClickException, _typer_exc.Exit, _typer_exc.Abort)
