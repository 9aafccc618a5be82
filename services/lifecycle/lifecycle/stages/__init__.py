"""Each customer's lifecycle stage and its history, moved by events."""
