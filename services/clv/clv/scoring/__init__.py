"""Scoring runs: per-customer P(alive), expected purchases and spend, CLV, the three values and value tiers."""
