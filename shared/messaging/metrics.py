"""Prometheus metrics of the messaging core, labelled by service so the embedded mode can share a registry."""

from prometheus_client import Counter, Histogram

OUTBOX_PUBLISHED = Counter("crm_outbox_published_total", "Outbox rows sent to the transport", ["service"])
OUTBOX_RELAY_ERRORS = Counter("crm_outbox_relay_errors_total", "Relay rounds interrupted by an error", ["service"])
EVENTS_APPLIED = Counter("crm_events_applied_total", "Events applied by an inbox consumer", ["consumer"])
EVENTS_DUPLICATE = Counter("crm_events_duplicate_total", "Redelivered events skipped by the inbox", ["consumer"])
EVENTS_DEAD_LETTERED = Counter("crm_events_dead_lettered_total", "Events sent to a dead-letter topic", ["consumer"])
BATCH_SECONDS = Histogram("crm_consumer_batch_seconds", "Time to apply one consumed batch", ["consumer"])
