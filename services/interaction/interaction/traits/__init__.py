"""Computed profile traits, recomputed per batch from the stored facts of the customers it touched."""
