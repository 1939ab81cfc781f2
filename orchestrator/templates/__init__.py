"""Message templates authors write: the workflows file's `[templates.*]` and the dialects'
Templates APIs (Vonage Verify v2 templates and fragments, Twilio TemplateSid), rendered with
Vonage's placeholder names."""
