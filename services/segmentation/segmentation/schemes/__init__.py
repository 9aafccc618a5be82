"""RFM schemes as data: named segments over recency × frequency score ranges, validated to cover every cell once."""
