"""Custom event types: admin-registered, versioned JSON Schemas for partner events beyond the fixed types."""
