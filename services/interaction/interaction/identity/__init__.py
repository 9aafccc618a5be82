"""Identity resolution: identifiers to one customer, merges (audited) and their undo."""
