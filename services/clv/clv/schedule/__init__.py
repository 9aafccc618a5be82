"""Scheduled refits: a background loop that refits and rescores each currency on an interval."""
