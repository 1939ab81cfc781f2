"""The `verify-orchestrator` command: serve, worker, dev and the admin subcommands."""
