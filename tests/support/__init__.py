"""Test support: a real redis-server, real serve/worker processes, a real webhook receiver."""
