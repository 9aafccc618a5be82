"""clv: customer value — transaction summaries, lifetime value models, value tiers and value propositions."""
