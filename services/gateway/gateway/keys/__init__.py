"""API keys: created by admins, shown once, stored as SHA-256, revocable, expiring, last use recorded."""
