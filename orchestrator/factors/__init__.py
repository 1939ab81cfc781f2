"""Entity → Factor → Challenge: push, TOTP and passkey factors (Twilio Verify's data model)."""
