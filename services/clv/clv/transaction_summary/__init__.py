"""Per-customer transaction summaries (count, spend, first/last purchase): the sufficient statistics of CLV."""
