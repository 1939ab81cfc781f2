"""Verify Orchestrator: verification workflows behind the Vonage and Twilio Verify v2 dialects."""

__version__ = "0.1.0"
