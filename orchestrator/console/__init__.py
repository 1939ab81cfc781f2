"""The operations console: recent verifications, their messages and webhooks, in HTML."""
