"""The web process's plumbing: the app factory, AppKeys, middleware, bodies, OpenAPI, /metrics."""
