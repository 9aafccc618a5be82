"""Per-customer purchase aggregates kept incrementally from `purchase.recorded`: the input to RFM and tiers."""
