"""Clean scraped text: Unicode, whitespace, invisible characters, mojibake, HTML, special tokens."""

from __future__ import annotations

import html
import re
import unicodedata
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from typing import Any, Literal

import attrs

from finetune_web.errors import ConfigError, MissingDependencyError
from finetune_web.records import Document, Message, Preference, Record, Rejection, StepMetric
from finetune_web.transforms._text import (
    ALL_ROLES,
    TEXT_ROLES,
    check_fields,
    check_roles,
    map_texts,
    reject,
    selected_texts,
)

__all__ = ["CLEAN_METRICS", "CleanText", "escape_special_tokens", "find_special_tokens"]

#: The figures :class:`CleanText` reports (all counts, summed over the run).
CLEAN_METRICS = (
    "clean.control_chars_removed",
    "clean.html_entities_decoded",
    "clean.html_tags_removed",
    "clean.mojibake_fixed",
    "clean.special_tokens_escaped",
    "clean.unicode_normalized",
)

#: A ``<|name|>`` special token, as tiktoken and chat templates spell them.
_SPECIAL = re.compile(r"<\|([^<>|\s]{1,64})\|>")

_LINE_BREAKS = re.compile(r"\r\n?|[\x0b\x0c\x1c-\x1e\x85\u2028\u2029]")
#: ANSI terminal escapes: CSI sequences (colours, cursor moves) and two-character escapes.
_ANSI = re.compile(r"\x1b\[[0-?]*[ -/]*[@-~]|\x1b[@-Z\\-_]")
# Control (Cc) but tab and line feed, format (Cf: zero-width spaces and joiners, BOM, soft
# hyphen, bidi controls, tags...) and lone surrogates (Cs), as of Unicode 15; a test checks
# the set against the running Python's unicodedata.
_CC = "\x00-\x08\x0b-\x1f\x7f-\x9f"
_CF = (
    "\u00ad\u0600-\u0605\u061c\u06dd\u070f\u0890\u0891\u08e2\u180e\u200b\u200e\u200f"
    "\u202a-\u202e\u2060-\u2064\u2066-\u206f\ufeff\ufff9-\ufffb"
    "\U000110bd\U000110cd\U00013430-\U0001343f\U0001bca0-\U0001bca3"
    "\U0001d173-\U0001d17a\U000e0001\U000e0020-\U000e007f"
)
_JOINERS = "\u200c\u200d"
_INVISIBLE = re.compile(f"[{_CC}{_CF}{_JOINERS}\ud800-\udfff]")
_INVISIBLE_BUT_JOINERS = re.compile(f"[{_CC}{_CF}\ud800-\udfff]")

_ENTITY = re.compile(r"&(?:#[0-9]{1,7}|#[xX][0-9a-fA-F]{1,6}|[A-Za-z][A-Za-z0-9]{1,31});")
_COMMENT = re.compile(
    r"<!--.*?-->|<!\[CDATA\[.*?\]\]>|<![A-Za-z][^<>]*>|<\?[A-Za-z][^<>]*\?>", re.S
)
_SCRIPT = re.compile(r"<(script|style)\b[^<>]*>.*?</\1\s*>", re.S | re.I)
_TAG = re.compile(r"<(/?)([A-Za-z][A-Za-z0-9]{0,15})(?:\s[^<>]*)?/?>")
# fmt: off
_BLOCK_TAGS = frozenset((
    "address", "article", "aside", "blockquote", "br", "center", "dd", "details", "dialog",
    "div", "dl", "dt", "fieldset", "figcaption", "figure", "footer", "form", "h1", "h2", "h3",
    "h4", "h5", "h6", "header", "hr", "li", "main", "nav", "ol", "p", "pre", "section",
    "summary", "table", "tbody", "tfoot", "thead", "tr", "ul",
))
# fmt: on
_CELL_TAGS = frozenset(("td", "th"))
# fmt: off
_INLINE_TAGS = frozenset((
    "a", "abbr", "area", "audio", "b", "bdi", "bdo", "big", "body", "button", "caption", "cite",
    "code", "col", "colgroup", "data", "del", "dfn", "em", "font", "head", "html", "i",
    "iframe", "img", "input", "ins", "kbd", "label", "link", "map", "mark", "meta", "nobr",
    "noscript", "option", "picture", "q", "s", "samp", "select", "small", "source", "span",
    "strike", "strong", "sub", "sup", "svg", "textarea", "time", "title", "tt", "u", "var",
    "video", "wbr",
))
# fmt: on

_SPACES = re.compile(r"[\u00a0\u1680\u2000-\u200a\u202f\u205f\u3000]")
_INNER_RUN = re.compile(r"(?<=[^\n ]) {2,}")
_TRAILING = re.compile(r"[ \t]+$", re.M)
_BLANK_LINES = re.compile(r"\n{3,}")

#: Passes of the cleaning stages at most, until the text stops changing.
_MAX_PASSES = 5

SpecialTokenPolicy = Literal["escape", "reject"]
Normalization = Literal["NFC", "NFKC"]


def find_special_tokens(text: str) -> tuple[str, ...]:
    """Return the distinct ``<|name|>`` special-token strings in ``text``, sorted.

    Every token of :data:`~finetune_web.formats.tokens.OPENAI_SPECIAL_TOKENS`
    has this shape, and so do the chat-template tokens of other model
    families (``<|im_start|>``, ``<|eot_id|>``...).
    """
    if "<|" not in text:
        return ()
    return tuple(sorted({match.group(0) for match in _SPECIAL.finditer(text)}))


def escape_special_tokens(text: str) -> str:
    """Return ``text`` with every ``<|name|>`` written ``<| name |>``.

    The escaped form stays readable, and no tokenizer parses it as the
    special token (the spaces break the exact match).
    """
    return _SPECIAL.sub(r"<| \1 |>", text) if "<|" in text else text


def _tag_replacement(name: str) -> str | None:
    name = name.lower()
    if name in _BLOCK_TAGS:
        return "\n"
    if name in _CELL_TAGS:
        return " "
    if name in _INLINE_TAGS:
        return ""
    return None


def _strip_html(text: str, counts: Counter[str]) -> str:
    """Decode entities and remove tags until neither is left (entity-encoded tags included)."""

    def entity(match: re.Match[str]) -> str:
        decoded = html.unescape(match.group(0))
        if decoded != match.group(0):
            counts["clean.html_entities_decoded"] += 1
        return decoded

    def tag(match: re.Match[str]) -> str:
        replacement = _tag_replacement(match.group(2))
        if replacement is None:
            return match.group(0)
        counts["clean.html_tags_removed"] += 1
        return replacement

    while "&" in text or "<" in text:
        before = text
        text = _ENTITY.sub(entity, text)
        text, blocks = _SCRIPT.subn("", text)
        text, comments = _COMMENT.subn("", text)
        counts["clean.html_tags_removed"] += blocks + comments
        text = _TAG.sub(tag, text)
        if text == before:
            break
    return text


def _normalize_whitespace(text: str) -> str:
    text = _SPACES.sub(" ", text)
    text = _INNER_RUN.sub(" ", text)
    text = _TRAILING.sub("", text)
    return _BLANK_LINES.sub("\n\n", text).strip()


def _check_normalization(_: object, __: attrs.Attribute[Any], value: object) -> None:
    if value not in (None, "NFC", "NFKC"):
        raise ConfigError(f"normalization must be 'NFC', 'NFKC' or None, not {value!r}")


def _check_policy(_: object, __: attrs.Attribute[Any], value: object) -> None:
    if value not in ("escape", "reject"):
        raise ConfigError(f"special_tokens must be 'escape' or 'reject', not {value!r}")


def _ftfy_fixer() -> Callable[[str], str]:
    """Return ftfy's ``fix_text`` restricted to encoding repairs (mojibake only).

    Raises:
        MissingDependencyError: ftfy is not installed.
    """
    try:
        import ftfy
    except ImportError as exc:
        raise MissingDependencyError(
            'CleanText(fix_mojibake=True) needs ftfy: pip install "ftfy>=6.2" '
            "(or pass fix_mojibake=False)"
        ) from exc
    config: ftfy.TextFixerConfig = ftfy.TextFixerConfig(
        unescape_html=False,
        remove_terminal_escapes=False,
        fix_encoding=True,
        restore_byte_a0=True,
        replace_lossy_sequences=True,
        decode_inconsistent_utf8=True,
        fix_c1_controls=True,
        fix_latin_ligatures=False,
        fix_character_width=False,
        uncurl_quotes=False,
        fix_line_breaks=False,
        fix_surrogates=True,
        remove_control_chars=False,
        normalization=None,
        explain=False,
    )

    def fix(text: str) -> str:
        return ftfy.fix_text(text, config)

    return fix


@attrs.frozen(kw_only=True)
class CleanText:
    """Clean the texts of documents and examples for training.

    Each text goes through, until it stops changing: leftover HTML (entities
    decoded, known tags removed, ``<br>`` and block tags such as ``</p>``
    becoming line breaks, ``<script>``/``<style>`` blocks and comments
    dropped), mojibake repair (ftfy's encoding fixes only), removal of ANSI
    escapes, control characters (tab and line feed kept) and invisible
    format characters (zero-width spaces and joiners, BOM, soft hyphens,
    bidi controls), Unicode normalisation, and whitespace normalisation (line
    breaks to ``\\n``, runs of spaces inside a line to one, trailing spaces
    and more than one blank line removed, text stripped; indentation kept).

    Finally ``<|name|>`` special tokens are escaped to ``<| name |>`` or the
    record is rejected (``special_token``).  The guard looks at every
    message of an example whatever ``roles`` say, and at tool-call arguments.

    Rejection reasons: ``empty_after_cleaning`` (a document with no text left,
    or a message of a chosen role whose text was not empty and now is),
    ``special_token`` (with ``special_tokens="reject"``).

    Attributes:
        normalization: ``"NFC"`` (default), ``"NFKC"`` (also folds full-width
            letters, ligatures, compatibility spaces) or ``None``.
        fix_mojibake: repair text decoded with the wrong codec (needs ftfy).
        html: decode entities and strip tags.
        whitespace: normalise whitespace (turn off for code, where runs of
            spaces matter).
        keep_joiners: keep ZWJ/ZWNJ (U+200D/U+200C), which emoji sequences
            and Persian or Indic spelling need.
        special_tokens: ``"escape"`` or ``"reject"``.
        roles: for examples, the roles whose contents are cleaned (default:
            system, developer, user, assistant; tool results often hold JSON).
        fields: for documents, dotted ``data`` paths cleaned besides ``text``.
        name: the step's name in reports.
    """

    normalization: Normalization | None = attrs.field(default="NFC", validator=_check_normalization)
    fix_mojibake: bool = True
    html: bool = True
    whitespace: bool = True
    keep_joiners: bool = False
    special_tokens: SpecialTokenPolicy = attrs.field(default="escape", validator=_check_policy)
    roles: tuple[str, ...] = attrs.field(default=TEXT_ROLES, converter=check_roles)
    fields: tuple[str, ...] = attrs.field(default=(), converter=check_fields)
    name: str = "clean"

    def clean(self, text: str) -> str:
        """Return ``text`` cleaned as this step cleans every text (special tokens escaped).

        Raises:
            MissingDependencyError: ``fix_mojibake`` is on and ftfy is missing.
        """
        fixer = _ftfy_fixer() if self.fix_mojibake else None
        counts: Counter[str] = Counter()
        return escape_special_tokens(self._clean(text, fixer, counts))

    def _pass(self, text: str, fixer: Callable[[str], str] | None, counts: Counter[str]) -> str:
        if self.html:
            text = _strip_html(text, counts)
        if fixer is not None and not text.isascii():
            fixed = fixer(text)
            if fixed != text:
                counts["clean.mojibake_fixed"] += 1
                text = fixed
        if "\x1b" in text:
            text, escapes = _ANSI.subn("", text)
            counts["clean.control_chars_removed"] += escapes
        text = _LINE_BREAKS.sub("\n", text)
        invisible = _INVISIBLE_BUT_JOINERS if self.keep_joiners else _INVISIBLE
        text, removed = invisible.subn("", text)
        counts["clean.control_chars_removed"] += removed
        if self.normalization is not None and not unicodedata.is_normalized(
            self.normalization, text
        ):
            text = unicodedata.normalize(self.normalization, text)
            counts["clean.unicode_normalized"] += 1
        if self.whitespace:
            text = _normalize_whitespace(text)
        return text

    def _clean(self, text: str, fixer: Callable[[str], str] | None, counts: Counter[str]) -> str:
        for _ in range(_MAX_PASSES):
            cleaned = self._pass(text, fixer, counts)
            if cleaned == text:
                break
            text = cleaned
        return text

    def transform(self, records: Iterable[Record]) -> Iterator[Record | Rejection | StepMetric]:
        """Yield each record cleaned, or its rejection, after the figures of its cleaning.

        Raises:
            MissingDependencyError: ``fix_mojibake`` is on and ftfy is missing.
        """
        fixer = _ftfy_fixer() if self.fix_mojibake else None
        for metric in CLEAN_METRICS:
            yield StepMetric(name=metric, value=0)
        for record in records:
            counts: Counter[str] = Counter()
            out = self._process(record, fixer, counts)
            for metric in CLEAN_METRICS:
                if counts[metric]:
                    yield StepMetric(name=metric, value=counts[metric])
            yield out

    def _process(
        self, record: Record, fixer: Callable[[str], str] | None, counts: Counter[str]
    ) -> Record | Rejection:
        def clean(text: str) -> str:
            return self._clean(text, fixer, counts)

        cleaned = map_texts(record, clean, roles=self.roles, fields=self.fields)
        empty = self._emptied(record, cleaned)
        if empty is not None:
            return reject(self.name, record, "empty_after_cleaning", empty[0], empty[1])
        tokens: set[str] = set()

        def guard(text: str) -> str:
            found = find_special_tokens(text)
            if not found:
                return text
            tokens.update(found)
            if self.special_tokens == "reject":
                return text
            counts["clean.special_tokens_escaped"] += len(_SPECIAL.findall(text))
            return escape_special_tokens(text)

        if isinstance(cleaned, Document):
            guarded = map_texts(cleaned, guard, roles=(), fields=self.fields)
        else:
            guarded = map_texts(cleaned, guard, roles=ALL_ROLES, fields=())
            guarded = _guard_tool_calls(guarded, guard)
        if tokens and self.special_tokens == "reject":
            found = sorted(tokens)
            return reject(
                self.name,
                record,
                "special_token",
                f"contains special token(s) {', '.join(found)}, which fail a fine-tuning job; "
                'use special_tokens="escape" to keep the text with the tokens escaped',
                {"tokens": found},
            )
        return guarded

    def _emptied(self, before: Record, after: Record) -> tuple[str, dict[str, object]] | None:
        """Return why ``after`` has nothing left, or ``None`` when it has."""
        if isinstance(before, Document):
            texts = list(selected_texts(after, roles=(), fields=self.fields))
            if texts and not any(text.strip() for text in texts):
                return "no text left after cleaning", {}
            return None
        pairs = zip(_all_messages(before), _all_messages(after), strict=True)
        for index, (old, new) in enumerate(pairs):
            if old.role in self.roles and old.text.strip() and not new.text.strip():
                return (
                    f"message {index} ({old.role}) has no text left after cleaning",
                    {"message_index": index, "role": old.role},
                )
        return None


def _all_messages(record: Record) -> tuple[Message, ...]:
    if isinstance(record, Document):
        return ()
    if isinstance(record, Preference):
        return (*record.messages, record.preferred, record.non_preferred)
    return record.messages


def _guard_tool_calls(record: Record, guard: Callable[[str], str]) -> Record:
    if isinstance(record, Document):
        return record
    changed = False

    def fix(message: Message) -> Message:
        nonlocal changed
        if not message.tool_calls:
            return message
        calls = tuple(attrs.evolve(c, arguments=guard(c.arguments)) for c in message.tool_calls)
        if calls == message.tool_calls:
            return message
        changed = True
        return attrs.evolve(message, tool_calls=calls)

    messages = tuple(fix(m) for m in record.messages)
    if not isinstance(record, Preference):
        return attrs.evolve(record, messages=messages) if changed else record
    preferred, non_preferred = fix(record.preferred), fix(record.non_preferred)
    if not changed:
        return record
    return attrs.evolve(record, messages=messages, preferred=preferred, non_preferred=non_preferred)
