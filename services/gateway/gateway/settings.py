from pydantic import Field
from pydantic_settings import SettingsConfigDict

from shared.serving import read_timeout_protocol
from shared.settings import CommaList, ServiceSettings

SCHEMA = "gateway"


class GatewaySettings(ServiceSettings):
    """`GATEWAY_*` variables; `DATABASE_URL`, `KAFKA_BOOTSTRAP_SERVERS`, `TRANSPORT`… may be set unprefixed."""

    model_config = SettingsConfigDict(env_prefix="GATEWAY_", extra="ignore")

    service_name: str = "gateway"
    db_pool_size: int = 10
    interaction_url: str = "http://127.0.0.1:8001"
    segmentation_url: str = "http://127.0.0.1:8002"
    clv_url: str = "http://127.0.0.1:8003"
    lifecycle_url: str = "http://127.0.0.1:8004"
    # Upstream calls: connecting fails fast (a down service answers 503 at once), reading may take longer.
    connect_timeout_s: float = 1.0
    request_timeout_s: float = 10.0
    max_connections: int = 200
    # Idle pooled connections are dropped before the services' own keep-alive (uvicorn: 5 s) closes them;
    # otherwise a POST could go out on a connection the service is closing, and a POST is never retried.
    upstream_keepalive_s: float = 4.0
    # Circuit breaker: after this many consecutive connection failures a service is skipped for the cool-off.
    breaker_failures: int = 3
    breaker_cooloff_s: float = 5.0
    # `POST /v1/events` of one caller that arrive while two of its batches are on their way (or within this
    # wait) go to the interaction service as one batch (gateway/proxy/event_posts.py); each client still gets
    # its own answer after the commit. Off: each post is forwarded on its own. The default adds no wait: a
    # lone post goes at once, posts group only when they would otherwise queue.
    event_posts_grouped: bool = True
    event_posts_group_wait_s: float = Field(0.0, ge=0, le=1)
    # The composed view's copy (docs/gateway.md, "Composed view"): a part read from its owner is served from
    # the copy once it was read this long after the customer's last event (the other services consume the
    # events a little after the gateway) and until it is this old (what an owner changes without an event).
    view_copy_settle_s: float = 5.0
    view_copy_max_age_s: float = 300.0
    view_copy_pool_size: int = 10

    # --- Security -------------------------------------------------------------------------------------
    # Accepted as an admin key (scripts, benchmarks, the embedded mode). Empty: none.
    bootstrap_admin_key: str = ""
    # Verified keys stay in memory this long: revocation reaches other replicas within it.
    key_cache_ttl_s: float = 10.0
    # Bounded key caches: known keys (LRU) and unknown/revoked ones, separately, so random keys never evict
    # valid ones.
    key_cache_max: int = 50_000
    key_unknown_cache_max: int = 10_000
    # Failed authentications (unknown key, invalid token) per client address: sustained rate and burst. Past
    # them, a credential not already verified from memory is answered 429 without a database lookup.
    failed_auth_per_s: float = 2.0
    failed_auth_burst: int = 20
    # last_used_at is written at most this often per key, in one batched UPDATE.
    last_used_flush_s: float = 60.0
    # JWT bearer tokens (optional): verified against this JWKS; the role comes from `jwt_role_claim`.
    jwt_jwks_url: str = ""
    jwt_audience: str = ""
    jwt_issuer: str = ""
    jwt_algorithms: CommaList = ["RS256", "ES256"]
    jwt_role_claim: str = "role"
    jwt_allowed_roles: CommaList = ["frontend", "analyst"]
    # Per-key token bucket: sustained requests per second and burst. A key may carry its own rate.
    rate_limit_per_s: float = 100.0
    rate_limit_burst: int = 200
    # Bodies above this are refused with 413 before they reach a service.
    max_body_bytes: int = 6 * 1024 * 1024
    # CORS: comma-separated origins ("*" for any); empty disables CORS.
    cors_origins: CommaList = []
    cors_allow_credentials: bool = False
    cors_max_age_s: int = 600
    # The Ed25519 private key (base64url or PEM) the gateway signs its calls to the services with
    # (`INTERNAL_TOKEN_PRIVATE_KEY`, unprefixed like the services' public key); required.
    internal_token_private_key: str = ""
    # Lifetime of those tokens; one is reused per (service, caller) for half of it.
    internal_token_ttl_s: float = 60.0

    # Slow clients (shared/serving.py): the request line and headers must arrive within this time; the body
    # within the body timeout after them, extended by one second per `http_body_min_bytes_per_s` received.
    http_header_timeout_s: float = 10.0
    http_body_timeout_s: float = 20.0
    http_body_min_bytes_per_s: float = 10_240.0

    # --- Docs -----------------------------------------------------------------------------------------
    # The merged OpenAPI document is rebuilt lazily when older than this (or when a service was missing).
    openapi_refresh_s: float = 60.0

    # --- Webhooks -------------------------------------------------------------------------------------
    webhook_poll_interval_s: float = 1.0
    webhook_batch_size: int = 100
    webhook_timeout_s: float = 10.0
    webhook_max_attempts: int = 8
    webhook_backoff_base_s: float = 2.0
    webhook_backoff_max_s: float = 3600.0
    webhook_concurrency: int = 20
    # Webhooks go to public addresses only (checked at creation and on every delivery, after DNS). Host names,
    # addresses or networks listed here (comma-separated, e.g. "127.0.0.1,receiver.local,10.0.0.0/8") are
    # exempt: for development and tests, never in production.
    webhook_allowed_hosts: CommaList = []
    webhook_max_url_length: int = 2048

    def http_protocol(self) -> type:
        """uvicorn's `http=`: its HTTP/1.1 protocol with these read timeouts."""
        return read_timeout_protocol(self.http_header_timeout_s, self.http_body_timeout_s, self.http_body_min_bytes_per_s)

    def service_urls(self) -> dict[str, str]:
        return {
            "interaction": self.interaction_url,
            "segmentation": self.segmentation_url,
            "clv": self.clv_url,
            "lifecycle": self.lifecycle_url,
        }
