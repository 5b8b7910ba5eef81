"""PassageToExamples: transcript passages to self-supervised chat examples."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from finetune_web.config import load_config
from finetune_web.errors import ConfigError
from finetune_web.plugins import Family, Registry
from finetune_web.records import Document, Example, Location, Message, Rejection
from finetune_web.testing import check_transformer, run_step
from finetune_web.transforms.passages import PassageToExamples, split_near_middle, unpunctuate

TALK = (
    "Welcome back to the channel. Today we look at how electric kettles work. "
    "Dr. Smith built the first one in our lab. It took twelve minutes to boil a litre."
)


def _passage(text: str | None = TALK, number: int = 3) -> Document:
    return Document(
        id=f"talk.vtt#{number:05d}",
        text=text,
        metadata={
            "source": "talk.vtt",
            "format": "vtt",
            "start": 61.5,
            "end": 79.25,
            "cues": 4,
            "passage": number,
        },
        location=Location(origin="talk.vtt", index=number),
    )


def test_continue_splits_at_the_sentence_boundary_nearest_the_middle() -> None:
    """The user gets the first sentences, the assistant the rest; "Dr." is no boundary."""
    outputs, metrics = run_step(PassageToExamples(), [_passage()])
    (example,) = outputs
    assert isinstance(example, Example)
    assert [(m.role, m.content) for m in example.messages] == [
        (
            "user",
            "Continue this transcript.\n\nWelcome back to the channel. "
            "Today we look at how electric kettles work.",
        ),
        (
            "assistant",
            "Dr. Smith built the first one in our lab. It took twelve minutes to boil a litre.",
        ),
    ]
    assert (example.id, example.parent_id) == ("talk.vtt#00003", "talk.vtt#00003")
    assert example.metadata == {
        "source": "talk.vtt",
        "start": 61.5,
        "end": 79.25,
        "task": "continue",
    }
    assert example.location == Location(origin="talk.vtt", index=3)
    assert metrics == {}


def test_unpunctuated_captions_split_at_a_space_or_are_rejected() -> None:
    """Without a sentence boundary: a word split (counted), or no_boundary when turned off."""
    captions = (
        "so today we look at how electric kettles work and why the old ones were so very slow"
    )
    outputs, metrics = run_step(PassageToExamples(system="Transcripts."), [_passage(captions)])
    (example,) = outputs
    assert isinstance(example, Example)
    assert [m.text for m in example.messages] == [
        "Transcripts.",
        "Continue this transcript.\n\nso today we look at how electric kettles",
        "work and why the old ones were so very slow",
    ]
    assert metrics == {"passage_examples.word_splits": 1}
    (rejection,) = PassageToExamples(word_fallback=False).transform([_passage(captions)])
    assert isinstance(rejection, Rejection) and rejection.reason == "no_boundary"
    assert "word_fallback=True" in rejection.message


def test_boundaries_in_cjk_and_around_abbreviations() -> None:
    """CJK full stops split without spaces; lower-case continuations and initials do not."""
    assert split_near_middle(
        "今日はやかんの話です。電気ケトルは便利です。お湯がすぐ沸きます。"
    ) == (
        "今日はやかんの話です。",
        "電気ケトルは便利です。お湯がすぐ沸きます。",
        "sentence",
    )
    text = "We use e.g. tea leaves here. J. R. R. Tolkien wrote this one!"
    assert split_near_middle(text) == (
        "We use e.g. tea leaves here.",
        "J. R. R. Tolkien wrote this one!",
        "sentence",
    )
    assert split_near_middle("onewordonly", words=True) is None


def test_punctuate_task() -> None:
    """punctuate: user gets the lower-cased, unpunctuated passage, assistant the original."""
    (example,) = PassageToExamples(task="punctuate", instruction="Fix it:").transform([_passage()])
    assert isinstance(example, Example)
    assert example.messages[0].text == (
        "Fix it:\n\nwelcome back to the channel today we look at how electric kettles work "
        "dr smith built the first one in our lab it took twelve minutes to boil a litre"
    )
    assert example.messages[1].text == TALK
    assert example.metadata["task"] == "punctuate"
    assert unpunctuate("¿Qué tal? Bien, 3.5 grados… «Sí».") == "qué tal bien 3.5 grados «sí»"
    bare = "so today we look at how electric kettles work and why the old ones were so very slow"
    (rejection,) = PassageToExamples(task="punctuate").transform([_passage(bare)])
    assert isinstance(rejection, Rejection) and rejection.reason == "no_punctuation"


@pytest.mark.parametrize("text", ["", "Too short to split. Really."])
def test_short_passages_are_too_short(text: str) -> None:
    """Passages under min_chars are one too_short rejection naming the file."""
    (rejection,) = PassageToExamples().transform([_passage(text)])
    assert isinstance(rejection, Rejection)
    assert rejection.reason == "too_short" and rejection.details["chars"] == len(text)
    assert "talk.vtt#00003" in rejection.message and rejection.record == text


def test_non_passages_are_rejected() -> None:
    """No text is missing_field; an example is wrong_record_type."""
    example = Example(id="e", messages=[Message(role="user", content="hi")])
    outputs = list(PassageToExamples().transform([_passage(None), example]))
    assert [(r.record_id, r.reason) for r in outputs if isinstance(r, Rejection)] == [
        ("talk.vtt#00003", "missing_field"),
        ("e", "wrong_record_type"),
    ]


@pytest.mark.parametrize("options", [{"task": "summarize"}, {"min_chars": 1}])
def test_bad_options_fail_when_built(options: dict[str, Any]) -> None:
    """An unknown task or a min_chars under 2 is a ConfigError at construction."""
    with pytest.raises(ConfigError):
        PassageToExamples(**options)


def test_contract() -> None:
    """The step keeps the Transformer contract for both tasks."""
    passages = [_passage(TALK, 0), _passage("short", 1), _passage(TALK.lower(), 2)]
    for task in ("continue", "punctuate"):
        outputs = check_transformer(PassageToExamples(task=task), passages)
        assert len(outputs) == 3


@settings(deadline=None)
@given(st.text(alphabet="ab .!?。\n", max_size=60))
def test_split_keeps_every_character(text: str) -> None:
    """A split loses only the whitespace between the parts: first + gap + rest is the text."""
    split = split_near_middle(text)
    stripped = text.strip()
    if split is None:
        return
    first, rest, _ = split
    assert first and rest
    assert stripped.startswith(first) and stripped.endswith(rest)
    gap = stripped[len(first) : len(stripped) - len(rest)]
    assert gap.strip() == "" and len(first) + len(gap) + len(rest) == len(stripped)


def test_built_by_the_registry_and_from_toml(tmp_path: Path) -> None:
    """Registered under a name, the step is built from TOML options."""
    registry = Registry.builtins().with_plugin(
        Family.TRANSFORMS, "passage_examples", PassageToExamples
    )
    config = tmp_path / "talks.toml"
    config.write_text(
        '[source]\ntype = "jsonl"\npath = "passages.jsonl"\n\n'
        '[[steps]]\ntype = "passage_examples"\ntask = "punctuate"\nmin_chars = 40\n'
        "word_fallback = false\n",
        encoding="utf-8",
    )
    (step,) = load_config(config, registry=registry).pipeline.steps
    assert step == PassageToExamples(task="punctuate", min_chars=40, word_fallback=False)
    with pytest.raises(ConfigError, match="task"):
        registry.create(Family.TRANSFORMS, "passage_examples", {"task": "qa"})
