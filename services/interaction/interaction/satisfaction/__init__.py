"""NPS and CSAT totals and trends over time (by week or month), overall or by segment, partner or proposition,
from the feedback partners sent (interaction's own facts) and segmentation's memberships (copied from its events)."""
