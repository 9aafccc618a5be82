"""Profitability: each customer's profit to date and projected, cost to serve, and the profitability matrix."""
