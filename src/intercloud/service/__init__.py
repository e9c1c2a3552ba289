"""Use cases: what the API (and the reconciler) may do to the desired state."""
