"""Turn transcript passages into self-supervised chat examples.

A passage is a :class:`~finetune_web.records.Document` whose ``text`` is a
stretch of speech (cue texts joined by spaces) and whose metadata holds
``source``, ``start`` and ``end`` (seconds), as a transcript source yields
it.  The tasks offered need nothing but the passage itself: no model writes
any answer, so every answer is text somebody actually said.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator
from typing import Literal, TypeAlias

import attrs

from finetune_web.errors import ConfigError
from finetune_web.records import Document, Example, Record, Rejection, StepMetric
from finetune_web.transforms._examples import at_least, chat_messages, not_a_document, refuse

__all__ = ["PASSAGE_TASKS", "PassageTask", "PassageToExamples", "split_near_middle", "unpunctuate"]

PassageTask: TypeAlias = Literal["continue", "punctuate"]

#: The tasks :class:`PassageToExamples` offers.
PASSAGE_TASKS: tuple[str, ...] = ("continue", "punctuate")

_INSTRUCTIONS = {
    "continue": "Continue this transcript.",
    "punctuate": "Add punctuation and capital letters to this transcript.",
}

# Where a sentence may end: terminal punctuation, closing quotes or brackets, then spaces
# (Latin scripts); CJK terminal punctuation, spaces optional.  _boundaries() filters the
# Latin ones.
_LATIN_END = re.compile(r"[.!?…]+[\"'”’)\]]*(\s+)(?=\S)")
_CJK_END = re.compile(r"[。！？]+[」』”）)]*(\s*)(?=\S)")
_ABBREVIATIONS = frozenset(("dr", "mr", "mrs", "ms", "prof", "st", "vs", "no", "jr", "sr"))
_OPENERS = "\"'“‘([¿¡"
_WHITESPACE = re.compile(r"\s+")
_TRAILING_MARKS = re.compile(r"[.,!?;:…]+(?=[\"'”’)\]]*(?:\s|$))")
_ANYWHERE_MARKS = re.compile(r"[¿¡。、！？；：]")


def _no_sentence_end(text: str, end: int) -> bool:
    """Whether the word before ``text[end]`` is an initial ("J.") or a title ("Dr.")."""
    start = end
    while start > 0 and text[start - 1].isalpha():
        start -= 1
    word = text[start:end]
    return len(word) == 1 or word.lower() in _ABBREVIATIONS


def _boundaries(text: str) -> Iterator[tuple[int, int]]:
    """Yield ``(end of the sentence, start of the next)`` for each sentence boundary.

    A period, "!" or "?" followed by a lower-case word ("e.g. this"), after a
    single letter (an initial) or after a title ("Dr.", "Mr.", "St."...) is not
    a boundary.
    """
    for match in _LATIN_END.finditer(text):
        following = text[match.end(1) :].lstrip(_OPENERS)[:1]
        if following.islower() or _no_sentence_end(text, match.start()):
            continue
        yield match.start(1), match.end(1)
    for match in _CJK_END.finditer(text):
        yield match.start(1), match.end(1)


def _nearest(cuts: Iterable[tuple[int, int]], length: int) -> tuple[int, int] | None:
    middle = length / 2
    inside = [cut for cut in cuts if length / 4 <= cut[0] <= 3 * length / 4]
    return min(inside, key=lambda cut: (abs(cut[0] - middle), cut[0]), default=None)


def split_near_middle(text: str, *, words: bool = True) -> tuple[str, str, str] | None:
    """Split ``text`` in two at the sentence boundary nearest its middle.

    Only boundaries in the middle half of the text count, so neither part is
    less than a quarter of it.

    Args:
        text: the passage.
        words: when no sentence boundary is in the middle half, split at the
            space nearest the middle instead.

    Returns:
        ``(first part, rest, "sentence" or "word")``, both parts stripped, or
        ``None`` when there is no place to split.
    """
    text = text.strip()
    cut = _nearest(_boundaries(text), len(text))
    kind = "sentence"
    if cut is None and words:
        cut = _nearest(((m.start(), m.end()) for m in _WHITESPACE.finditer(text)), len(text))
        kind = "word"
    if cut is None:
        return None
    return text[: cut[0]].rstrip(), text[cut[1] :].lstrip(), kind


def unpunctuate(text: str) -> str:
    """Return ``text`` in lower case, without sentence punctuation, spaces collapsed.

    Marks at the end of a word (``.``, ``,``, ``!``, ``?``, ``;``, ``:``, ``…``)
    go; marks inside a word (``3.5``, ``e.g``) stay; ``¿``, ``¡`` and CJK
    punctuation go wherever they are.  Apostrophes, hyphens and quotes stay.
    """
    bare = _ANYWHERE_MARKS.sub(" ", _TRAILING_MARKS.sub("", text))
    return _WHITESPACE.sub(" ", bare).strip().lower()


def _task(value: str) -> PassageTask:
    if value == "continue":
        return "continue"
    if value == "punctuate":
        return "punctuate"
    raise ConfigError(f"task must be one of {', '.join(map(repr, PASSAGE_TASKS))}, not {value!r}")


@attrs.frozen(kw_only=True)
class PassageToExamples:
    """Make one self-supervised example from each transcript passage.

    Tasks:

    - ``"continue"``: the user message holds ``instruction`` and the first part
      of the passage, the assistant the rest.  The passage is split at the
      sentence boundary nearest its middle (within its middle half); with
      ``word_fallback`` a passage without one (auto-captions often have no
      punctuation) is split at the space nearest the middle instead, and the
      step figure ``passage_examples.word_splits`` counts those.
    - ``"punctuate"``: the user message holds the passage in lower case without
      sentence punctuation, the assistant the passage as written.  A passage
      with no punctuation to restore is rejected: it would teach nothing.

    The example keeps the document's ``id`` (and names it as ``parent_id``) and
    its location; its metadata holds ``source``, ``start``, ``end`` and ``task``.

    Rejection reasons: ``too_short`` (fewer than ``min_chars`` characters),
    ``no_boundary`` (``continue``: nowhere to split), ``no_punctuation``
    (``punctuate``: nothing to restore), ``missing_field`` (no text),
    ``wrong_record_type`` (not a document).

    Attributes:
        task: ``"continue"`` or ``"punctuate"``.
        instruction: the user message's first line (``None``: the task's default,
            "Continue this transcript." or "Add punctuation and capital letters
            to this transcript.").
        system: the system message, or ``None``/``""`` for none.
        min_chars: the shortest passage used, in characters.
        word_fallback: for ``continue``, split at a space when no sentence
            boundary is near the middle.
        name: the step's name in reports.
    """

    task: PassageTask = attrs.field(default="continue", converter=_task)
    instruction: str | None = None
    system: str | None = None
    min_chars: int = attrs.field(default=80, validator=at_least(2))
    word_fallback: bool = True
    name: str = "passage_examples"

    def _pair(self, document: Document, text: str) -> tuple[str, str, str] | Rejection:
        """Return ``(prompt text, answer, how)`` for the task, or the rejection."""
        if self.task == "punctuate":
            bare = unpunctuate(text)
            if bare == _WHITESPACE.sub(" ", text).strip():
                return refuse(
                    self.name,
                    document,
                    "no_punctuation",
                    "the passage has no punctuation or capitals to restore (auto-captions "
                    "often have none); use task='continue' for it",
                    {"task": self.task},
                )
            return bare, text, "punctuate"
        split = split_near_middle(text, words=self.word_fallback)
        if split is None:
            hint = "" if self.word_fallback else "; word_fallback=True would split it at a space"
            return refuse(
                self.name,
                document,
                "no_boundary",
                f"no sentence boundary near the middle of the passage to split it at{hint}",
                {"task": self.task, "chars": len(text)},
            )
        return split

    def _passage(self, document: Document) -> Iterator[Example | Rejection | StepMetric]:
        text = (document.text or "").strip()
        if document.text is None:
            yield refuse(
                self.name,
                document,
                "missing_field",
                "the document has no text; read transcripts with a transcript source",
                {"fields": ["text"]},
            )
            return
        if len(text) < self.min_chars:
            yield refuse(
                self.name,
                document,
                "too_short",
                f"the passage has {len(text)} characters, fewer than min_chars={self.min_chars}",
                {"chars": len(text), "min_chars": self.min_chars},
            )
            return
        pair = self._pair(document, text)
        if isinstance(pair, Rejection):
            yield pair
            return
        prompt, answer, how = pair
        if how == "word":
            yield StepMetric(name="passage_examples.word_splits", value=1)
        instruction = self.instruction if self.instruction is not None else _INSTRUCTIONS[self.task]
        user = f"{instruction.strip()}\n\n{prompt}" if instruction.strip() else prompt
        metadata = document.metadata
        yield Example(
            messages=chat_messages(self.system, user, answer),
            id=document.id,
            parent_id=document.id,
            metadata={
                "source": metadata.get("source"),
                "start": metadata.get("start"),
                "end": metadata.get("end"),
                "task": self.task,
            },
            location=document.location,
        )

    def transform(self, records: Iterable[Record]) -> Iterator[Example | Rejection | StepMetric]:
        """Yield one example per passage, or a rejection saying why it cannot make one."""
        for record in records:
            if isinstance(record, Document):
                yield from self._passage(record)
            else:
                yield not_a_document(self.name, record)
