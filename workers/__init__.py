"""The arq worker: sends codes, runs step timeouts and delivers webhooks."""
