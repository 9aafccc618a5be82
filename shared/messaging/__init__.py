"""Messaging core: transports, transactional outbox + relay, inbox consumer with dead letters.

Delivery is at-least-once end to end and effects are exactly-once: the outbox makes publishing part of the
producer's database transaction; the inbox makes applying an event part of the consumer's transaction.
"""
