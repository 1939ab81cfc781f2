"""Tenants and their settings: Twilio accounts and services, Vonage applications."""
