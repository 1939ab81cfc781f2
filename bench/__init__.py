"""Load and latency benchmarks for Verify Orchestrator: `python -m bench [--quick]`.

Everything runs against real processes the bench starts itself (redis-server, `serve`, `worker`
and a bare aiohttp "floor" app) and tears down at the end. Nothing here imports from tests/.
"""
