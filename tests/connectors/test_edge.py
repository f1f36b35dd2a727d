"""Edge.address: the subject key is exactly HMAC-SHA256(pepper, normalized address)."""

from __future__ import annotations

import hashlib
import hmac

import pytest
from consentinel.connectors.contract import Edge
from consentinel.streams.events.identity import Pseudonymizer


@pytest.mark.parametrize("pepper_len", [16, 32, 63, 64, 65, 200])
def test_subject_key_is_hmac_sha256_of_the_normalized_address(pepper_len: int) -> None:
    pepper = bytes(range(pepper_len))
    edge = Edge(Pseudonymizer(pepper), "FR")
    for raw, channel, normalized in (
        ("  Ana.Lopez@Example.ORG ", "email", "ana.lopez@example.org"),
        ("MAILTO:ana@example.org", "email", "ana@example.org"),
        ("06 12 34 56 78", "sms", "+33612345678"),
        ("élise@exemple.fr", "email", "élise@exemple.fr"),
    ):
        expected = hmac.new(pepper, normalized.encode("utf-8"), hashlib.sha256).hexdigest()
        assert edge.address(raw, channel).key == expected, (pepper_len, raw)


def test_a_long_number_sender_leaves_masked_short_codes_and_ids_unchanged() -> None:
    from consentinel.connectors.contract import sending_domain

    assert sending_domain("+15005550006") == "+1 5** * ** ** 06"
    assert sending_domain("whatsapp:+33612345678") == "+33 6** ** ** 78"
    assert sending_domain("36111") == "36111"
    assert sending_domain("AcmeShop") == "AcmeShop"
    assert sending_domain("news@shop.example.com") == "shop.example.com"
