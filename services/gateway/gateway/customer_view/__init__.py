"""`GET /v1/customers/{id}`: profile, segmentation, value and stage composed into one response."""
