"""What the IPsec backend a charon reports means for the agent (pure).

The backend is "kernel" (kernel ESP) or "kernel-libipsec" (userspace ESP, all there is on
kernels without ESP); None while no charon has said. Encryption lanes (extra charons,
drivers/ipsec/lanes.py) only help with kernel-libipsec: it encrypts on one thread per charon,
while kernel ESP already encrypts on the sending CPU."""

from __future__ import annotations

LIBIPSEC = "kernel-libipsec"


def lanes_in_use(configured: int, backend: str | None) -> int:
    """How many of the configured lanes carry traffic: further lanes only with kernel-libipsec;
    1 while the backend is not known."""
    return configured if backend == LIBIPSEC else 1
