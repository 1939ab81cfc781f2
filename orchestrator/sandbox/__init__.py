"""What only the sandbox serves: the outbox API and the passkeys demo page."""
