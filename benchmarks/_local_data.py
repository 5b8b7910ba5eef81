"""Seeded chat examples of varied length for the local training benchmark.

Sentences come from the gold article texts of the article-extraction
benchmark in ``../shared/realdata`` (181 real news and blog pages, mostly
English; sentences with non-ASCII letters are left out), so the words and
their frequencies are those of real prose.  When that
folder is absent, sentences are drawn from a small built-in vocabulary
instead (the figures then are not comparable with runs on real text).

Each example has an optional system prompt, a user turn (an instruction and
a short quoted passage) and an assistant turn (a run of consecutive
sentences); a quarter of those over 60 words have a second user/assistant
exchange, and those under 20 words are a bare question and its answer.  Its length in
words follows a log-normal law clipped to ``[MIN_WORDS, MAX_WORDS]``, which
with a 4k-token BPE vocabulary trained on the same text gives about 25 to
500 tokens per example (mean about 136).
The same seed always gives the same examples.
"""

from __future__ import annotations

import json
import math
import random
import re
from pathlib import Path

from finetune_web.records import Example, Message

__all__ = ["MAX_WORDS", "MIN_WORDS", "REALDATA", "corpus_sentences", "make_examples"]

REALDATA = Path(__file__).resolve().parents[1] / ".." / "shared" / "realdata"
_ARTICLES = REALDATA / "article_extraction_benchmark" / "ground-truth.json"

#: Bounds on an example's length in words (all turns together).
MIN_WORDS = 6
MAX_WORDS = 160
_MEDIAN_WORDS = 48
_SIGMA = 0.8

_SENTENCE = re.compile(r"[^.!?\n]+[.!?]")
_ASCII = str.maketrans({"\u2018": "'", "\u2019": "'", "\u201c": '"', "\u201d": '"', "\u2014": "-"})

_SYSTEMS = (
    "You are a helpful assistant.",
    "You are a careful news editor. Answer briefly and keep the facts.",
    "You write clear summaries for busy readers.",
    "Answer in plain English. Never invent names or numbers.",
    "You are an assistant for a newsroom; quote the passage when useful.",
)
_ASKS = (
    "Summarise this passage:",
    "Rewrite the following in your own words:",
    "What is the main point here?",
    "Continue the story after this paragraph:",
    "Explain this to a reader who missed the news:",
    "Give the key facts from the text below.",
)
_FOLLOW_UPS = (
    "Can you say more about that?",
    "Shorter, please.",
    "Who is involved, and what happens next?",
    "Why does it matter?",
)
_FALLBACK_TEXT = (
    "the of and to in a is that for it as was with be by on not he this are or his from at "
    "which but have an they you were her she there been one all we their has would when what "
    "city council market price report season team players game phone company money year week "
    "people school police court water energy music film book story world country state new "
    "said told asked says found made took gave kept left called plans rules costs votes"
)


def corpus_sentences(seed: int = 0) -> list[str]:
    """Return real sentences from the article benchmark (or seeded made-up ones when absent).

    Args:
        seed: seeds the made-up sentences used when the real data is absent.

    Returns:
        ASCII sentences of at least four words, in the articles' order.
    """
    if _ARTICLES.is_file():
        articles = json.loads(_ARTICLES.read_text(encoding="utf-8"))
        sentences = []
        for key in sorted(articles):
            for match in _SENTENCE.finditer(articles[key]["articleBody"]):
                sentence = " ".join(match.group().translate(_ASCII).split())
                if len(sentence.split()) >= 4 and sentence.isascii():
                    sentences.append(sentence)
        return sentences
    rng = random.Random(seed)
    words = _FALLBACK_TEXT.split()
    weights = [1 / (rank + 1) for rank in range(len(words))]
    return [
        " ".join(rng.choices(words, weights, k=rng.randint(5, 25))).capitalize() + "."
        for _ in range(20_000)
    ]


def _passage(rng: random.Random, sentences: list[str], words: int) -> str:
    """Return consecutive sentences from a random place, about ``words`` words long."""
    start = rng.randrange(len(sentences))
    out: list[str] = []
    count = 0
    index = start
    while count < words:
        sentence = sentences[index % len(sentences)]
        remaining = words - count
        parts = sentence.split()
        if len(parts) > remaining:
            sentence = " ".join(parts[: max(remaining, 3)]) + "."
        out.append(sentence)
        count += len(sentence.split())
        index += 1
    return " ".join(out)


def make_examples(
    count: int, *, seed: int = 0, sentences: list[str] | None = None
) -> list[Example]:
    """Return ``count`` seeded chat examples of varied length.

    Args:
        count: how many examples.
        seed: the same seed gives the same examples.
        sentences: the text to draw from (:func:`corpus_sentences` when ``None``).

    Returns:
        Examples with ids ``bench-0`` ... ``bench-<count-1>``.
    """
    source = sentences if sentences is not None else corpus_sentences(seed)
    rng = random.Random(seed)
    examples = []
    for index in range(count):
        total = int(rng.lognormvariate(math.log(_MEDIAN_WORDS), _SIGMA))
        total = min(MAX_WORDS, max(MIN_WORDS, total))
        messages: list[Message] = []
        if total >= 20 and rng.random() < 0.6:
            messages.append(Message(role="system", content=rng.choice(_SYSTEMS)))
        turns = 2 if total > 60 and rng.random() < 0.25 else 1
        budget = total // turns
        for turn in range(turns):
            quoted = max(3, int(budget * rng.uniform(0.1, 0.4)))
            answer = max(3, budget - quoted)
            if turn == 0 and total < 20:
                user = rng.choice(_FOLLOW_UPS)
                answer = budget
            elif turn == 0:
                user = f"{rng.choice(_ASKS)}\n\n{_passage(rng, source, quoted)}"
            else:
                user = rng.choice(_FOLLOW_UPS)
            messages.append(Message(role="user", content=user))
            messages.append(Message(role="assistant", content=_passage(rng, source, answer)))
        examples.append(Example(messages=messages, id=f"bench-{index}"))
    return examples
