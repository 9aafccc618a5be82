"""Customers, their identifiers and their purchases; the profile read by frontends."""
