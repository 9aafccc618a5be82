"""Per-customer aggregates kept incrementally from interaction, clv and lifecycle events: the input of every run."""
