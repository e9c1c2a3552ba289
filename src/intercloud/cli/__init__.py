"""The `intercloud` command line: a client of the agent's REST API (see `main`)."""
