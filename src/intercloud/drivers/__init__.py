"""Side effects live here, behind small interfaces chosen by configuration."""
