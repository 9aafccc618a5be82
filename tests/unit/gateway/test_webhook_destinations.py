"""The webhook destination rules (security issue, class 4): which addresses are public, URL checks, and the
resolver that refuses a DNS answer with any non-public address."""

import ipaddress
import socket

import pytest
from aiohttp.abc import AbstractResolver

from gateway.webhooks.destinations import AddressNotAllowed, DestinationPolicy, VettingResolver, WebhookUrlNotAllowed, is_public
from gateway.webhooks.schemas import redact_credentials


@pytest.mark.parametrize(
    ("address", "public"),
    [
        ("93.184.216.34", True),
        ("2606:2800:220:1:248:1893:25c8:1946", True),
        ("127.0.0.1", False),
        ("127.255.0.9", False),
        ("::1", False),
        ("0.0.0.0", False),
        ("::", False),
        ("10.0.0.1", False),
        ("172.31.255.255", False),
        ("192.168.1.1", False),
        ("100.64.0.1", False),
        ("169.254.169.254", False),
        ("fd00:ec2::254", False),
        ("fe80::1", False),
        ("fc00::1", False),
        ("224.0.0.251", False),
        ("239.255.255.250", False),
        ("ff02::1", False),
        ("240.0.0.1", False),
        ("255.255.255.255", False),
        ("198.18.0.1", False),
        ("192.0.2.1", False),
        ("::ffff:127.0.0.1", False),
        ("::ffff:10.0.0.1", False),
        ("::ffff:93.184.216.34", True),
        ("2002:7f00:1::", False),
        ("64:ff9b::a00:1", False),
        ("::127.0.0.1", False),
    ],
)
def test_public_addresses(address: str, public: bool) -> None:
    assert is_public(ipaddress.ip_address(address)) is public


def test_url_rules_and_the_allow_list() -> None:
    strict = DestinationPolicy()
    assert str(strict.check_url("https://hooks.example.com/a?b=1")) == "https://hooks.example.com/a?b=1"
    for url in [
        "http://127.0.0.1/x",
        "http://localhost/x",
        "http://LOCALHOST./x",
        "http://[::1]/x",
        "https://u:p@hooks.example.com/",
        "https://u@hooks.example.com/",
        "file:///etc/passwd",
        "gopher://hooks.example.com/",
        "https://hooks.example.com/" + "a" * 2048,
        "http:///x",
    ]:
        with pytest.raises(WebhookUrlNotAllowed):
            strict.check_url(url)
    dev = DestinationPolicy(["127.0.0.1", "10.0.0.0/8", "receiver.local"])
    dev.check_url("http://127.0.0.1:9000/x")
    dev.check_url("http://10.2.3.4/x")
    with pytest.raises(WebhookUrlNotAllowed):
        dev.check_url("http://[::1]/x")  # only what is listed
    assert dev.address_allowed("receiver.local", ipaddress.ip_address("192.168.5.5"))
    assert not dev.address_allowed("other.local", ipaddress.ip_address("192.168.5.5"))


class _Answers(AbstractResolver):
    def __init__(self, *addresses: str) -> None:
        self.addresses = addresses

    async def resolve(self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET) -> list:
        return [
            {"hostname": host, "host": a, "port": port, "family": socket.AF_INET, "proto": 0, "flags": 0} for a in self.addresses
        ]

    async def close(self) -> None:
        pass


async def test_the_resolver_refuses_an_answer_with_any_non_public_address() -> None:
    policy = DestinationPolicy()
    ok = await VettingResolver(policy, _Answers("93.184.216.34")).resolve("hooks.example.com", 443)
    assert [a["host"] for a in ok] == ["93.184.216.34"]
    for answer in [("127.0.0.1",), ("93.184.216.34", "10.0.0.1"), ("169.254.169.254",), ("::ffff:127.0.0.1",)]:
        with pytest.raises(AddressNotAllowed):
            await VettingResolver(policy, _Answers(*answer)).resolve("rebinding.example.com", 443)


def test_credentials_are_redacted_on_read() -> None:
    assert redact_credentials("https://user:secret@hooks.example.com/x?y=1") == "https://***@hooks.example.com/x?y=1"
    assert redact_credentials("https://token@hooks.example.com/x") == "https://***@hooks.example.com/x"
    assert redact_credentials("https://hooks.example.com/x") == "https://hooks.example.com/x"
