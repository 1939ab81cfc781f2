"""Who may call, how often, and what may be called back: auth, lockout, fraud guard, SSRF guard,
webhook signing and trusted proxies."""
