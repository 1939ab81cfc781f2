"""`python -m orchestrator.cli`: the same command as `verify-orchestrator`."""

from orchestrator.cli.main import main

if __name__ == "__main__":
    raise SystemExit(main())
