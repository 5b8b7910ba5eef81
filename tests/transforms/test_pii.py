"""RedactPII: e-mails, phones, IPs, cards and IBANs replaced; look-alikes left alone."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from finetune_web.errors import ConfigError
from finetune_web.records import (
    Document,
    Example,
    Location,
    Message,
    Preference,
    Record,
    Rejection,
    StepMetric,
)
from finetune_web.testing import check_transformer, run_step
from finetune_web.transforms.pii import (
    DEFAULT_PLACEHOLDERS,
    PII_KINDS,
    RedactPII,
    find_pii,
    iban_valid,
    luhn_valid,
)

REDACT = RedactPII()


def _run(
    step: RedactPII, records: list[Record]
) -> tuple[list[Record | Rejection], dict[str, float]]:
    return run_step(step, records)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("mail taro.yamada@example.co.jp now", "mail [EMAIL] now"),
        ("メールはtaro@example.jpまでお送りください", "メールは[EMAIL]までお送りください"),
        ("Пишите: ivan.petrov@mail.ru!", "Пишите: [EMAIL]!"),
        ("call +81 3-1234-5678 today", "call [PHONE] today"),
        ("電話03-1234-5678です", "電話[PHONE]です"),
        ("携帯は090-1234-5678、固定は(03) 1234-5678", "携帯は[PHONE]、固定は[PHONE]"),
        ("フリーダイヤル0120-123-456", "フリーダイヤル[PHONE]"),
        ("Звоните +7 (495) 123-45-67", "Звоните [PHONE]"),
        ("тел. 8 800 555-35-35 или 8 (495) 123-45-67", "тел. [PHONE] или [PHONE]"),
        ("US (555) 123-4567, 555-123-4567, 555.123.4567", "US [PHONE], [PHONE], [PHONE]"),
        ("toll free 1-800-555-0199", "toll free [PHONE]"),
        ("E.164: +14155552671.", "E.164: [PHONE]."),
        ("UK +44 20 7946 0958 or 020 7946 0958", "UK [PHONE] or [PHONE]"),
        ("Berlin +49 (0)30 1234567", "Berlin [PHONE]"),
        ("Paris 01 23 45 67 89", "Paris [PHONE]"),
        ("server 192.168.1.20:8080 down", "server [IP]:8080 down"),
        ("IPは203.0.113.5です", "IPは[IP]です"),
        ("v6 2001:db8:85a3::8a2e:370:7334 and fe80::1ff:fe23:4567:890a", "v6 [IP] and [IP]"),
        ("card 4111 1111 1111 1111 exp", "card [CARD] exp"),
        ("4111-1111-1111-1111 / 5500000000000004", "[CARD] / [CARD]"),
        ("amex 3782 822463 10005", "amex [CARD]"),
        ("card 4111 1111 1111 1111 123 (CVV)", "card [CARD] 123 (CVV)"),
        ("IBAN DE89 3704 0044 0532 0130 00.", "IBAN [IBAN]."),
        ("IBAN GB82WEST12345698765432", "IBAN [IBAN]"),
        ("Contact No. 0181-5057000,5099000", "Contact No. [PHONE],5099000"),
    ],
)
def test_personal_data_is_replaced_by_placeholders(text: str, expected: str) -> None:
    """Each kind is found in English, Japanese and Russian text and replaced by its placeholder."""
    assert REDACT.redact(text) == expected


@pytest.mark.parametrize(
    "text",
    [
        "ISBN 978-3-16-148410-0",
        "ISBN 0-306-40615-2",
        "EAN 9783161484100",
        "Price $1,234.56 or €1.234.567,89 or 12 800 ₽",
        "At 2024-01-15 10:30:00 (2024-01-15T10:30:00Z), 12:30:45",
        "Dates 15.01.2024, 01/15/2024, 01-15-2024, 2024.01.15",
        "Order #123-456-7890 and order 112-4567890-1234567",
        "version 1.2.3, v10.0.19041.1, version 1.2.3.4, Python 3.11.7",
        "Not a card: 4111 1111 1111 1112, 1234567890123, 9400 1000 0000 0000 0000 00",
        "timestamp 1705312200000, pi 3.14159, call 911",
        "std::vector, MAC 00:1A:2B:3C:4D:5E, localhost 127.0.0.1 and ::1, 0.0.0.0",
        "ZIP 94103-1234, 〒100-0001, 1.2.3.4.5, 999.1.1.1",
        "Garmin model 010-02862-10, UUID 550e8400-e29b-41d4-a716-446655440000",
        "Not an IBAN: DE00 3704 0044 0532 0130 00",
        "user at example dot com, @handle, a@b",
    ],
)
def test_look_alikes_are_left_alone(text: str) -> None:
    """ISBNs, prices, dates, timestamps, order and version numbers, invalid cards and IBANs
    are not personal data."""
    assert REDACT.redact(text) == text
    assert find_pii(text) == []


def test_luhn_and_mod97_checks() -> None:
    """The checksums accept known-good numbers and reject one-digit changes."""
    assert luhn_valid("4111111111111111") and luhn_valid("378282246310005")
    assert not luhn_valid("4111111111111112") and not luhn_valid("")
    assert iban_valid("DE89 3704 0044 0532 0130 00") and iban_valid("gb82west12345698765432")
    assert not iban_valid("DE88 3704 0044 0532 0130 00") and not iban_valid("DE89")


def test_find_pii_lists_kind_and_text() -> None:
    """find_pii reports what would be replaced, kind by kind."""
    text = "a@b.io, +81 90-1234-5678, 10.0.0.1, 4111 1111 1111 1111"
    assert find_pii(text) == [
        ("email", "a@b.io"),
        ("card", "4111 1111 1111 1111"),
        ("ip", "10.0.0.1"),
        ("phone", "+81 90-1234-5678"),
    ]


def test_placeholders_and_kinds_are_configurable() -> None:
    """Placeholders override the defaults per kind; unchosen kinds are left in place."""
    step = RedactPII(kinds=("email", "phone"), placeholders={"email": "<email>"})
    assert step.placeholders == {**DEFAULT_PLACEHOLDERS, "email": "<email>"}
    assert step.redact("a@b.io 03-1234-5678 10.0.0.1") == "<email> [PHONE] 10.0.0.1"


@pytest.mark.parametrize(
    "kwargs",
    [{"kinds": ("ssn",)}, {"kinds": ()}, {"placeholders": {"ssn": "x"}}, {"roles": ("x",)}],
)
def test_unknown_kinds_and_roles_are_refused(kwargs: dict[str, object]) -> None:
    """A typo in a kind or role fails when the step is built, naming the valid ones."""
    with pytest.raises(ConfigError):
        RedactPII(**kwargs)  # type: ignore[arg-type]


def test_metrics_count_each_kind_and_list_every_kind() -> None:
    """The run report gets pii.<kind> counts, zero for kinds never found."""
    records: list[Record] = [
        Document(id="d1", text="a@b.io and c@d.org"),
        Document(id="d2", text="call 090-1234-5678"),
    ]
    outputs, metrics = _run(REDACT, records)
    assert [o.text for o in outputs if isinstance(o, Document)] == [
        "[EMAIL] and [EMAIL]",
        "call [PHONE]",
    ]
    assert metrics == {f"pii.{kind}": 0 for kind in PII_KINDS} | {"pii.email": 2, "pii.phone": 1}


def test_reject_if_found_rejects_with_counts_and_location() -> None:
    """reject_if_found turns a record holding personal data into a pii_found rejection."""
    doc = Document(id="d1", text="a@b.io, 10.0.0.1", location=Location(origin="x.jsonl", line=3))
    clean = Document(id="d2", text="nothing here")
    outputs, metrics = _run(RedactPII(reject_if_found=True), [doc, clean])
    rejection, kept = outputs
    assert kept is clean
    assert isinstance(rejection, Rejection)
    assert (rejection.reason, rejection.details) == ("pii_found", {"kinds": {"email": 1, "ip": 1}})
    assert rejection.message.startswith(
        "record d1 (x.jsonl:3): holds personal data (1 email, 1 ip)"
    )
    assert metrics["pii.email"] == 1


def test_examples_preferences_and_document_fields() -> None:
    """Every role by default (tool results too), both DPO answers, and chosen data fields."""
    example = Example(
        id="e1",
        messages=[
            Message(role="user", content="I am a@b.io"),
            Message(role="tool", content='{"phone": "03-1234-5678"}'),
            Message(role="assistant", content=[{"type": "text", "text": "Hi a@b.io"}]),
        ],
    )
    pair = Preference(
        id="p1",
        messages=[Message(role="user", content="x")],
        preferred=Message(role="assistant", content="mail a@b.io"),
        non_preferred=Message(role="assistant", content="ip 10.0.0.1"),
    )
    doc = Document(id="d1", data={"seller": {"email": "s@shop.de"}, "notes": ["ip 10.0.0.2", 5]})
    outputs, _ = _run(RedactPII(fields=("seller.email", "notes")), [example, pair, doc])
    out_example, out_pair, out_doc = outputs
    assert isinstance(out_example, Example)
    assert [m.text for m in out_example.messages] == [
        "I am [EMAIL]",
        '{"phone": "[PHONE]"}',
        "Hi [EMAIL]",
    ]
    assert isinstance(out_pair, Preference)
    assert (out_pair.preferred.text, out_pair.non_preferred.text) == ("mail [EMAIL]", "ip [IP]")
    assert isinstance(out_doc, Document)
    assert out_doc.data == {"seller": {"email": "[EMAIL]"}, "notes": ["ip [IP]", 5]}
    only_users, _ = _run(RedactPII(roles=("user",)), [example])
    assert isinstance(only_users[0], Example)
    assert only_users[0].messages[2].text == "Hi a@b.io"


# --- properties -----------------------------------------------------------------------------


@st.composite
def card_numbers(draw: st.DrawFn) -> str:
    """A Luhn-valid card number of 13-19 digits starting like a card, plainly or in groups."""
    length = draw(st.integers(13, 19))
    body = draw(st.sampled_from("23456")) + "".join(
        draw(st.lists(st.sampled_from("0123456789"), min_size=length - 2, max_size=length - 2))
    )
    check = next(d for d in "0123456789" if luhn_valid(body + d))
    number = body + check
    if length in (13, 14, 15, 16, 19) and draw(st.booleans()):
        separator = draw(st.sampled_from(" -"))
        return separator.join(number[i : i + 4] for i in range(0, length, 4))
    return number


_LOCAL = st.text(alphabet="abcdefghijklmnopqrstuvwxyz0123456789._+-", min_size=1, max_size=12)
emails = st.builds(
    lambda local, domain, tld: f"x{local.strip('.')}x@{domain}.{tld}",
    _LOCAL,
    st.from_regex(r"[a-z0-9]([a-z0-9-]{0,10}[a-z0-9])?", fullmatch=True),
    st.sampled_from(["com", "jp", "ru", "co.uk", "org"]),
)
# Noise: any text without digits, '@' or whitespace (pieces are joined by spaces).
_NOISE = st.text(
    alphabet=st.characters(blacklist_categories=("Nd", "Zs", "Cc", "Cs"), blacklist_characters="@"),
    max_size=8,
)


@settings(max_examples=200, deadline=None)
@given(st.lists(st.one_of(card_numbers(), emails, _NOISE), max_size=12))
def test_no_valid_card_or_email_survives(pieces: list[str]) -> None:
    """Cards and e-mails set among any other words are all replaced: nothing Luhn-valid of
    13-19 digits and no e-mail address is left, and a second pass finds nothing."""
    text = " ".join(pieces)
    redacted = REDACT.redact(text)
    for piece in pieces:
        if "@" in piece or piece[:1] in ("2", "3", "4", "5", "6"):  # an e-mail or a card
            assert piece not in redacted
    assert find_pii(redacted) == []
    digits = "".join(c if c in "0123456789" else " " for c in redacted.replace(" ", ""))
    assert not [d for d in digits.split() if 13 <= len(d) <= 19 and luhn_valid(d)]


@settings(max_examples=50, deadline=None)
@given(st.lists(st.one_of(card_numbers(), emails, _NOISE, st.text(max_size=10)), max_size=8))
def test_every_record_leaves_once_with_or_without_rejection(pieces: list[str]) -> None:
    """The Transformer contract holds when redacting and when rejecting records with PII."""
    records = [Document(id=f"d{i}", text=piece) for i, piece in enumerate(pieces)]
    for step in (REDACT, RedactPII(reject_if_found=True)):
        outputs = check_transformer(step, records)
        assert len(outputs) == len(records)


def test_pulling_one_output_reads_a_bounded_number_of_inputs() -> None:
    """The step is lazy: the first record out costs one record in."""
    pulled = 0

    def endless() -> Iterator[Record]:
        nonlocal pulled
        while True:
            pulled += 1
            yield Document(id=f"d{pulled}", text="mail a@b.io")

    first = next(item for item in REDACT.transform(endless()) if not isinstance(item, StepMetric))
    assert isinstance(first, Document) and first.text == "mail [EMAIL]"
    assert pulled == 1
