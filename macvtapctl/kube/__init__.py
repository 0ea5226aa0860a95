"""The only code that talks to the API server. `kubernetes` is imported lazily, inside functions."""
