"""Segmentation's memberships, copied from its `segment.membership_changed` events (interaction never reads
segmentation's tables): what a partner's share of each segment is computed against."""
