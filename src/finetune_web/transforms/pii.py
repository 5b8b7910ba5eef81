"""Redact personal data: e-mail addresses, phone numbers, IP addresses, card numbers, IBANs.

Each kind is found by a pattern and then checked, so that look-alikes stay:
IP addresses must parse (:mod:`ipaddress`), card numbers must pass the Luhn
check and start like a card, IBANs must pass the ISO 13616 mod-97 check, and
phone numbers must have the shape of an international (``+``) number or of
a domestic number of a known style (North American, Japanese/European with a
trunk ``0``, Russian with a trunk ``8``).
"""

from __future__ import annotations

import ipaddress
import re
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Mapping
from typing import Any

import attrs

from finetune_web.errors import ConfigError
from finetune_web.records import Record, Rejection, StepMetric
from finetune_web.transforms._text import ALL_ROLES, check_fields, check_roles, map_texts, reject

__all__ = [
    "DEFAULT_PLACEHOLDERS",
    "PII_KINDS",
    "RedactPII",
    "find_pii",
    "iban_valid",
    "luhn_valid",
]

#: The kinds of personal data, in the order they are looked for.
PII_KINDS = ("email", "iban", "card", "ip", "phone")

#: What each kind is replaced with unless told otherwise.
DEFAULT_PLACEHOLDERS: Mapping[str, str] = {
    "email": "[EMAIL]",
    "iban": "[IBAN]",
    "card": "[CARD]",
    "ip": "[IP]",
    "phone": "[PHONE]",
}

# Boundaries are ASCII-only, so that a number right after Japanese or Russian text is found.
# A number starts after neither a letter, a digit, nor a digit and a separator (so never in
# the middle of a longer run of digit groups).
_BEFORE = r"(?<![A-Za-z0-9_+#№/\-])(?<![0-9][.,])(?<!\d)"
_NOT_AFTER_DIGITS = r"(?<![0-9][ \-])"
_AFTER = r"(?![A-Za-z0-9_]|\d|[.,/\-][0-9])"
_AFTER_RE = re.compile(_AFTER)
#: After a phone number a comma may start the next one ("0181-5057000,5099000").
_PHONE_AFTER = r"(?![A-Za-z0-9_]|\d|[./\-][0-9])"
_PHONE_AFTER_RE = re.compile(_PHONE_AFTER)
_SEP = r"[ \-\u2010\u2011\uff0d]"
_DIGIT_GROUPS = re.compile(r"[0-9]+")
#: The last group of digits of a number, with the separator before it.
_LAST_GROUP = re.compile(r"[ .\-\u2010\u2011\uff0d]?\(?[0-9]+\)?$")


def _candidates(body: str, before: str = _BEFORE, after: str = _AFTER) -> re.Pattern[str]:
    """Compile ``body`` between its boundaries, as group 1."""
    return re.compile(f"{before}({body}){after}")


_EMAIL = _candidates(
    r"[A-Za-z0-9](?:[A-Za-z0-9._%+\-]{0,62}[A-Za-z0-9_%+\-])?"
    r"@(?:[A-Za-z0-9](?:[A-Za-z0-9\-]{0,61}[A-Za-z0-9])?\.)+"
    r"(?:[A-Za-z]{2,24}|xn--[A-Za-z0-9\-]{1,59})",
    before=r"(?<![A-Za-z0-9._%+\-])",
    after=r"(?![A-Za-z0-9\-]|\.[A-Za-z0-9])",
)
_IBAN = _candidates(
    r"[A-Z]{2}[0-9]{2}(?: ?[A-Z0-9]{4}){2,7}(?: ?[A-Z0-9]{1,4})?",
    before=r"(?<![A-Za-z0-9])",
    after=r"(?![A-Za-z0-9])",
)
_CARD = _candidates(
    _NOT_AFTER_DIGITS + r"(?:[0-9]{13,19}"
    r"|[0-9]{4}(?P<s1>[ \-])[0-9]{4}(?P=s1)[0-9]{4}(?P=s1)[0-9]{1,4}(?:(?P=s1)[0-9]{1,4})?"
    r"|[0-9]{4}(?P<s2>[ \-])[0-9]{6}(?P=s2)[0-9]{4,5})",
    after=r"(?![A-Za-z0-9_]|\d)",
)
_IPV4 = _candidates(
    r"(?:[0-9]{1,3}\.){3}[0-9]{1,3}",
    before=r"(?<![A-Za-z0-9_.])(?<!\d)",
    after=r"(?![A-Za-z0-9_]|\d|\.[0-9])",
)
_IPV6 = _candidates(
    r"(?:[0-9A-Fa-f]{0,4}:){2,7}(?:[0-9A-Fa-f]{1,4}|(?:[0-9]{1,3}\.){3}[0-9]{1,3})?",
    before=r"(?<![A-Za-z0-9_:.])(?<!\d)",
    after=r"(?![A-Za-z0-9_:]|\d)",
)
_VERSION_BEFORE = re.compile(r"(?:\bv|\bver\.?|version|release|build)\s*$", re.I)
_ISBN_BEFORE = re.compile(r"isbn(?:-1[03])?:?\s*$", re.I)

_PHONE_SHAPE = (
    # international: +, a country code and groups of digits, 8 to 15 digits in all
    r"(?P<intl>\+[0-9]{1,3}(?:[ .\-]?\(?[0-9]{1,5}\)?){1,6})"
    # the others never start right after another group of digits
    rf"|{_NOT_AFTER_DIGITS}(?:"
    # North American: (555) 123-4567, 555-123-4567, 555.123.4567, 1-800-555-0199
    r"(?P<nanp>(?:1[ .\-])?(?:\([2-9][0-9]{2}\) ?|[2-9][0-9]{2}(?P<ns>[ .\-]))"
    r"[0-9]{3}(?(ns)(?P=ns)|[ .\-])[0-9]{4})"
    # Russian with trunk 8: 8 800 555-35-35, 8 (495) 123-45-67
    rf"|(?P<ru>8{_SEP}?\([0-9]{{3}}\){_SEP}?[0-9]{{3}}{_SEP}?[0-9]{{2}}{_SEP}?[0-9]{{2}}"
    rf"|8{_SEP}[0-9]{{3}}{_SEP}[0-9]{{3}}{_SEP}?[0-9]{{2}}{_SEP}?[0-9]{{2}})"
    # trunk 0 (Japan, Europe): 03-1234-5678, 090-1234-5678, (03) 1234-5678, 020 7946 0958
    rf"|(?P<trunk>(?:\(0[0-9]{{1,4}}\) ?|0[0-9]{{1,4}}{_SEP})"
    rf"[0-9]{{1,8}}(?:{_SEP}[0-9]{{2,8}}){{0,3}}))"
)
_PHONE = _candidates(_PHONE_SHAPE, after=_PHONE_AFTER)
_PHONE_FULL = re.compile(_PHONE_SHAPE)


def luhn_valid(digits: str) -> bool:
    """Return whether a string of digits passes the Luhn check (payment card numbers)."""
    total = 0
    for position, char in enumerate(reversed(digits)):
        value = int(char)
        if position % 2:
            value = value * 2 - 9 if value > 4 else value * 2
        total += value
    return total % 10 == 0 and bool(digits)


def iban_valid(text: str) -> bool:
    """Return whether ``text`` (spaces allowed) is an IBAN passing the ISO 13616 mod-97 check."""
    compact = text.replace(" ", "").upper()
    if not 15 <= len(compact) <= 34 or not compact[:2].isalpha() or not compact[2:4].isdigit():
        return False
    moved = compact[4:] + compact[:4]
    if not moved.isascii() or not moved.isalnum():
        return False
    return int("".join(str(int(char, 36)) for char in moved)) % 97 == 1


def _digits(text: str) -> str:
    return "".join(char for char in text if char.isdigit())


def _shorter(candidate: str) -> str | None:
    """Return ``candidate`` without its last group of digits, or ``None`` if nothing is left."""
    shorter = _LAST_GROUP.sub("", candidate)
    return shorter if shorter and shorter != candidate else None


#: Accepts a candidate: returns the end of the piece of personal data it holds, or ``None``.
Acceptor = Callable[[re.Match[str], str], "int | None"]


def _whole(valid: Callable[[str], bool]) -> Acceptor:
    def accept(match: re.Match[str], _: str) -> int | None:
        return match.end(1) if valid(match.group(1)) else None

    return accept


def _card_digits_valid(candidate: str) -> bool:
    digits = _digits(candidate)
    return 13 <= len(digits) <= 19 and digits[0] in "23456" and luhn_valid(digits)


def _card(match: re.Match[str], text: str) -> int | None:
    """Accept a Luhn-valid card number, dropping trailing groups (a CVV, a year) if needed."""
    start, candidate = match.start(1), match.group(1)
    while candidate is not None and len(_digits(candidate)) >= 13:
        end = start + len(candidate)
        if _card_digits_valid(candidate) and _AFTER_RE.match(text, end):
            return end
        candidate = _shorter(candidate) if not candidate.isdigit() else None
    return None


def _ip(match: re.Match[str], text: str) -> int | None:
    start = match.start(1)
    if _VERSION_BEFORE.search(text[max(0, start - 12) : start]):
        return None
    candidate = match.group(1)
    if ":" in candidate and sum(1 for group in candidate.split(":") if group) < 3:
        return None
    try:
        address = ipaddress.ip_address(candidate)
    except ValueError:
        return None
    return None if address.is_loopback or address.is_unspecified else match.end(1)


def _phone_shape_valid(match: re.Match[str]) -> bool:
    digits = len(_digits(match.group(0)))
    if match.group("intl"):
        return 8 <= digits <= 15
    if match.group("trunk"):
        groups = [len(group) for group in _DIGIT_GROUPS.findall(match.group(0))]
        french = groups == [2, 2, 2, 2, 2]  # 01 23 45 67 89
        return 9 <= digits <= 12 and (french or min(groups[1:]) >= 3)
    return True


def _phone(match: re.Match[str], text: str) -> int | None:
    """Accept a phone number, dropping trailing groups that make it too long or misshapen."""
    start = match.start(1)
    if _ISBN_BEFORE.search(text[max(0, start - 10) : start]):
        return None
    candidate: str | None = match.group(1)
    while candidate is not None:
        end = start + len(candidate)
        shape = _PHONE_FULL.fullmatch(candidate)
        if shape is not None and _phone_shape_valid(shape) and _PHONE_AFTER_RE.match(text, end):
            return end
        candidate = _shorter(candidate)
    return None


_FINDERS: Mapping[str, tuple[tuple[re.Pattern[str], Acceptor], ...]] = {
    "email": ((_EMAIL, _whole(lambda _: True)),),
    "iban": ((_IBAN, _whole(iban_valid)),),
    "card": ((_CARD, _card),),
    "ip": ((_IPV4, _ip), (_IPV6, _ip)),
    "phone": ((_PHONE, _phone),),
}


def _spans(text: str, pattern: re.Pattern[str], accept: Acceptor) -> Iterator[tuple[int, int]]:
    """Yield the spans of accepted candidates, left to right."""
    for match in pattern.finditer(text):
        end = accept(match, text)
        if end is not None:
            yield match.start(1), end


def _redact(
    text: str,
    kinds: Iterable[str],
    placeholders: Mapping[str, str],
    found: list[tuple[str, str]],
) -> str:
    """Replace each kind in turn, appending ``(kind, replaced text)`` to ``found``.

    A finder runs again while it finds something: a number hidden by the one
    before it (``4111... 5500...``) is found once that one is a placeholder.
    """
    for kind in kinds:
        for pattern, accept in _FINDERS[kind]:
            while True:
                pieces: list[str] = []
                position = 0
                for start, end in _spans(text, pattern, accept):
                    found.append((kind, text[start:end]))
                    pieces += [text[position:start], placeholders[kind]]
                    position = end
                if not pieces:
                    break
                text = "".join(pieces) + text[position:]
    return text


def find_pii(text: str, kinds: Iterable[str] = PII_KINDS) -> list[tuple[str, str]]:
    """Return ``(kind, text)`` for every piece of personal data in ``text``.

    Args:
        text: the text to search.
        kinds: the kinds to look for (see :data:`PII_KINDS`).

    Returns:
        What :class:`RedactPII` would replace, kind by kind in the order of
        :data:`PII_KINDS`, each kind in text order.
    """
    found: list[tuple[str, str]] = []
    wanted = set(kinds)
    _redact(text, [k for k in PII_KINDS if k in wanted], DEFAULT_PLACEHOLDERS, found)
    return found


def _kinds(value: Iterable[str] | str) -> tuple[str, ...]:
    kinds = (value,) if isinstance(value, str) else tuple(value)
    unknown = sorted(set(kinds) - set(PII_KINDS))
    if unknown or not kinds:
        raise ConfigError(f"kinds must be some of {list(PII_KINDS)}, got {list(kinds)!r}")
    return tuple(kind for kind in PII_KINDS if kind in kinds)


def _placeholders(value: Mapping[str, str] | None) -> dict[str, str]:
    given = dict(value or {})
    unknown = sorted(set(given) - set(PII_KINDS))
    if unknown:
        raise ConfigError(f"placeholders for unknown kinds {unknown}; kinds are {list(PII_KINDS)}")
    return {**DEFAULT_PLACEHOLDERS, **{kind: str(text) for kind, text in given.items()}}


@attrs.frozen(kw_only=True)
class RedactPII:
    """Replace personal data in texts with placeholders such as ``[EMAIL]``.

    Records pass with their texts redacted; the step reports how many of each
    kind it replaced as ``pii.<kind>`` figures.  With ``reject_if_found`` a
    record holding any is rejected instead (reason ``pii_found``, ``details``
    counting each kind).

    Attributes:
        kinds: what to look for, from ``email``, ``iban``, ``card``, ``ip``, ``phone``.
        placeholders: replacement per kind, merged over :data:`DEFAULT_PLACEHOLDERS`.
        reject_if_found: reject records holding personal data instead of redacting it.
        roles: for examples, the roles whose contents are redacted (default: all).
        fields: for documents, dotted ``data`` paths redacted besides ``text``.
        name: the step's name in reports.
    """

    kinds: tuple[str, ...] = attrs.field(default=PII_KINDS, converter=_kinds)
    placeholders: dict[str, str] = attrs.field(factory=dict, converter=_placeholders)
    reject_if_found: bool = False
    roles: tuple[str, ...] = attrs.field(default=ALL_ROLES, converter=check_roles)
    fields: tuple[str, ...] = attrs.field(default=(), converter=check_fields)
    name: str = "redact_pii"

    def redact(self, text: str) -> str:
        """Return ``text`` with the personal data of the chosen kinds replaced."""
        return _redact(text, self.kinds, self.placeholders, [])

    def transform(self, records: Iterable[Record]) -> Iterator[Record | Rejection | StepMetric]:
        """Yield each record redacted (or rejected), after the figures of what was found."""
        for kind in self.kinds:
            yield StepMetric(name=f"pii.{kind}", value=0)
        for record in records:
            found: list[tuple[str, str]] = []

            def redact(text: str, found: list[tuple[str, str]] = found) -> str:
                return _redact(text, self.kinds, self.placeholders, found)

            redacted = map_texts(record, redact, roles=self.roles, fields=self.fields)
            counts = Counter(kind for kind, _ in found)
            for kind in self.kinds:
                if counts[kind]:
                    yield StepMetric(name=f"pii.{kind}", value=counts[kind])
            if counts and self.reject_if_found:
                kinds: dict[str, Any] = {kind: counts[kind] for kind in self.kinds if counts[kind]}
                listed = ", ".join(f"{n} {kind}" for kind, n in kinds.items())
                yield reject(
                    self.name,
                    record,
                    "pii_found",
                    f"holds personal data ({listed}); redact it with reject_if_found=False",
                    {"kinds": kinds},
                )
                continue
            yield redacted
