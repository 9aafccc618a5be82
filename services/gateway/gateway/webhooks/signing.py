"""Webhook signatures: HMAC-SHA256 over `<timestamp>.<body>` with the subscription's secret.

Headers: `X-CRM-Webhook-Timestamp: <unix seconds>`, `X-CRM-Webhook-Signature: v1=<hex digest>`. A receiver
recomputes the digest over the raw body, compares in constant time, and rejects old timestamps (replays).
"""

import hashlib
import hmac
import secrets
import time

TIMESTAMP_HEADER = "X-CRM-Webhook-Timestamp"
SIGNATURE_HEADER = "X-CRM-Webhook-Signature"
DELIVERY_HEADER = "X-CRM-Webhook-Delivery"
EVENT_TYPE_HEADER = "X-CRM-Event-Type"


def new_secret() -> str:
    return "whsec_" + secrets.token_urlsafe(32)


def sign(secret: str, timestamp: int, body: bytes) -> str:
    mac = hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256)
    return "v1=" + mac.hexdigest()


def verify(secret: str, timestamp: str, body: bytes, signature: str, tolerance_s: int = 300) -> bool:
    """What a receiver does (documented in docs/gateway.md)."""
    if not timestamp.isdigit() or abs(time.time() - int(timestamp)) > tolerance_s:
        return False
    return hmac.compare_digest(sign(secret, int(timestamp), body), signature)
