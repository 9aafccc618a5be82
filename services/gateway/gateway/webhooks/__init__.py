"""Webhooks: subscriptions to domain events, signed deliveries with retries, a delivery log, redelivery."""
