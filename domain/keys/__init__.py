"""API keys: created, authenticated (as a Principal), revoked."""
