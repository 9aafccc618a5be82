"""segmentation: customer portfolio analysis — RFM, clusters, value tiers, rule segments, membership history."""
