"""Pure domain layer: models, validation, naming, VNI allocation and the reconciler's diff.

Nothing here touches the kernel, a daemon, the network or the database."""
