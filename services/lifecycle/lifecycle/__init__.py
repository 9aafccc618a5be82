"""lifecycle: the pipeline Approach → Acquisition → Development → Retention → Loyalty (and churn), deals, funnels."""
