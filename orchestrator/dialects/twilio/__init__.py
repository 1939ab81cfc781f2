"""The Twilio Verify v2 dialect, whole: schemas, forms, wire mapping and its routes."""
