"""The Vonage Verify v2 dialect, whole: request schemas, wire mapping and routes."""
