"""Campaigns and their report: leads, qualified leads, first purchases, revenue and the CLV of the customers
acquired, by campaign or lead source, over a period and by cohort; cost per acquisition and return where a
campaign's cost is given.

The facts are copies from their owners' events (never their tables): leads (with `campaign` and `lead_source`),
purchases and refunds from interaction, CLV from clv (the copy follows clv's version)."""
