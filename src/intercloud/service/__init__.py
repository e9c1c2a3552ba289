"""Use cases: what the API may do to the desired state. They only record it; the reconciler,
below them, makes the hosts match it."""
