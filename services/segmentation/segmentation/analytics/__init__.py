"""Pure, vectorised computations (numpy, scikit-learn): RFM scores, clusters, value tiers. No I/O here."""
