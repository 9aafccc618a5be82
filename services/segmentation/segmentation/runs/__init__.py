"""Runs as resources: RFM, clustering and value tiers computed over the aggregates, versioned results, schedule."""
