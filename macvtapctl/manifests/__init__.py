"""Pure renderers of Kubernetes objects (no I/O)."""
