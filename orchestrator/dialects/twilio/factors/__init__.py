"""Twilio Verify's Entities, Factors, Challenges, Notifications and Access Tokens routes."""
