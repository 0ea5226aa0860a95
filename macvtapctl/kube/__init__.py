"""The only code that talks to the API server. `kubernetes` is imported lazily, inside functions."""

from macvtapctl.kube.resources import Resource

__all__ = ["Resource"]
