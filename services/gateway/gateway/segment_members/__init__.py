"""`GET /v1/segments/{id}/members`: segmentation's page of members with name and email added by the gateway."""
