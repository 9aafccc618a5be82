"""Segments of every kind, their members and membership history (entered/left per customer and segment)."""
