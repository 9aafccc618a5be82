"""The internal token on its own: what the gateway signs, what a service accepts and what it refuses."""

import jwt
import pytest

from shared.internal_auth import (
    ISSUER,
    Caller,
    InternalAuthConfigError,
    InvalidInternalToken,
    TokenSigner,
    TokenVerifier,
    generate_keypair,
    key_id,
    load_private_key,
)

PRIVATE, PUBLIC = generate_keypair()
ANALYST = Caller("key-1", "analyst")


class Clock:
    def __init__(self, now: float = 1_800_000_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def test_a_signed_token_names_the_caller_to_its_service() -> None:
    token = TokenSigner(PRIVATE).token("clv", Caller("key-7", "partner", "shop-eu"))
    assert TokenVerifier(PUBLIC, "clv").verify(token) == Caller("key-7", "partner", "shop-eu")


def test_a_token_for_another_service_is_refused() -> None:
    token = TokenSigner(PRIVATE).token("clv", ANALYST)
    with pytest.raises(InvalidInternalToken, match="not for interaction"):
        TokenVerifier(PUBLIC, "interaction").verify(token)


def test_a_token_signed_with_another_key_is_refused() -> None:
    other_private, _ = generate_keypair()
    with pytest.raises(InvalidInternalToken, match="unknown key"):
        TokenVerifier(PUBLIC, "clv").verify(TokenSigner(other_private).token("clv", ANALYST))


def test_a_forged_token_under_the_right_key_id_is_refused() -> None:
    """Someone who read the public key (and so its kid) still cannot sign."""
    other = load_private_key(generate_keypair()[0])
    kid = key_id(load_private_key(PRIVATE).public_key())
    forged = jwt.encode(
        {"iss": ISSUER, "aud": "clv", "sub": "x", "role": "admin", "iat": 1, "exp": 4_000_000_000},
        other,
        algorithm="EdDSA",
        headers={"kid": kid},
    )
    with pytest.raises(InvalidInternalToken, match="InvalidSignatureError"):
        TokenVerifier(PUBLIC, "clv").verify(forged)


@pytest.mark.parametrize("algorithm", ["HS256", "none"])
def test_a_token_of_another_algorithm_is_refused(algorithm: str) -> None:
    """No algorithm confusion: HMAC keyed with the public key, or no signature at all."""
    kid = key_id(load_private_key(PRIVATE).public_key())
    forged = jwt.encode(
        {"iss": ISSUER, "aud": "clv", "sub": "x", "role": "admin", "iat": 1, "exp": 4_000_000_000},
        PUBLIC if algorithm == "HS256" else None,
        algorithm=algorithm,
        headers={"kid": kid},
    )
    with pytest.raises(InvalidInternalToken):
        TokenVerifier(PUBLIC, "clv").verify(forged)


def test_an_expired_token_is_refused_even_after_it_was_accepted() -> None:
    clock = Clock()
    token = TokenSigner(PRIVATE, ttl_s=60, clock=clock).token("clv", ANALYST)
    verifier = TokenVerifier(PUBLIC, "clv", clock=clock)
    assert verifier.verify(token) == ANALYST
    clock.now += 120  # past expiry and leeway: the verified-token cache must not keep it alive
    with pytest.raises(InvalidInternalToken, match="expired"):
        verifier.verify(token)
    with pytest.raises(InvalidInternalToken, match="expired"):
        TokenVerifier(PUBLIC, "clv", clock=clock).verify(token)


def test_the_signer_reuses_a_token_for_half_its_life_only() -> None:
    clock = Clock()
    signer = TokenSigner(PRIVATE, ttl_s=60, clock=clock)
    first = signer.token("clv", ANALYST)
    clock.now += 29
    assert signer.token("clv", ANALYST) == first
    assert signer.token("lifecycle", ANALYST) != first
    assert signer.token("clv", Caller("key-2", "analyst")) != first
    clock.now += 2
    assert signer.token("clv", ANALYST) != first


def test_several_public_keys_accept_tokens_of_each_during_a_rotation() -> None:
    new_private, new_public = generate_keypair()
    verifier = TokenVerifier(f"{PUBLIC},{new_public}", "clv")
    assert verifier.verify(TokenSigner(PRIVATE).token("clv", ANALYST)) == ANALYST
    assert verifier.verify(TokenSigner(new_private).token("clv", ANALYST)) == ANALYST


def test_missing_keys_stop_startup_with_the_variable_to_set() -> None:
    with pytest.raises(InternalAuthConfigError, match="INTERNAL_TOKEN_PUBLIC_KEY"):
        TokenVerifier("", "clv")
    with pytest.raises(InternalAuthConfigError, match="INTERNAL_TOKEN_PRIVATE_KEY"):
        TokenSigner("")
    with pytest.raises(InternalAuthConfigError, match="not an Ed25519 key"):
        TokenVerifier("not-a-key", "clv")
