"""Plumbing and event contracts shared by every service. No domain logic lives here."""
