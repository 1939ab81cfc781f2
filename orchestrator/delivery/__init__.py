"""Delivery providers' shared vocabulary: their configuration models and their receipts.

Pure code (pydantic, hmac, json): the web process checks and parses HTTP receipts with it, the
worker builds its senders (`workers/providers/`) from the same configuration models.
"""
