"""The pure domain: models, the transition function, policies and errors. No I/O in here."""
