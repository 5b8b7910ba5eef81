"""The local data path: labels on assistant tokens, packed rows kept apart, token statistics."""

from __future__ import annotations

from pathlib import Path

import pytest

from finetune_web.records import Example, Message, Tokenized

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")

from finetune_web.backends.local import (  # noqa: E402 -- after the skip guards
    IGNORE_INDEX,
    ChatEncoder,
    build_tiny_model,
    collate,
    forward_packed,
    is_smoke_test_model,
    pack_examples,
    token_stats,
)


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_tiny_model(tmp_path_factory.mktemp("tiny"), seed=3)


@pytest.fixture(scope="module")
def encoder(model_dir: Path) -> ChatEncoder:
    return ChatEncoder(transformers.AutoTokenizer.from_pretrained(model_dir))


@pytest.fixture(scope="module")
def model(model_dir: Path) -> object:
    loaded = transformers.AutoModelForCausalLM.from_pretrained(model_dir)
    loaded.eval()
    return loaded


def _example(i: int, words: int) -> Example:
    text = " ".join(f"word{(i * 7 + k) % 13}" for k in range(words))
    return Example(
        id=f"ex{i}",
        messages=[
            Message(role="system", content="Be brief."),
            Message(role="user", content=f"Question {i}: {text}?"),
            Message(role="assistant", content=f"Answer {i}: {text}."),
        ],
    )


def _trained_text(encoder: ChatEncoder, tokenized: Tokenized) -> str:
    pairs = zip(tokenized.input_ids, tokenized.labels, strict=True)
    ids = [token for token, label in pairs if label != IGNORE_INDEX]
    return str(encoder.tokenizer.decode(ids))


def test_tiny_model_is_marked_as_a_smoke_test(model_dir: Path) -> None:
    """build_tiny_model saves a loadable model whose directory says it is a smoke-test model."""
    assert is_smoke_test_model(model_dir)
    assert (model_dir / "model.safetensors").is_file()
    assert not is_smoke_test_model(model_dir.parent)


def test_labels_cover_assistant_content_and_end_of_turn_only(encoder: ChatEncoder) -> None:
    """Only the assistant's reply and its end-of-turn token are trained on."""
    tokenized = encoder.encode(_example(1, 5))
    assert encoder.tokenizer.decode(tokenized.input_ids) == encoder.render(_example(1, 5).messages)
    trained = _trained_text(encoder, tokenized)
    assert trained.startswith("Answer 1: ")
    assert "<|im_end|>" in trained
    assert "Question" not in trained and "Be brief" not in trained


def test_weight_zero_turns_are_context_only(encoder: ChatEncoder) -> None:
    """An assistant message with weight 0 is not trained on; the other assistant turns are."""
    example = Example(
        id="multi",
        messages=[
            Message(role="user", content="one"),
            Message(role="assistant", content="first reply", weight=0),
            Message(role="user", content="two"),
            Message(role="assistant", content="second reply"),
        ],
    )
    trained = _trained_text(encoder, encoder.encode(example))
    assert "second reply" in trained
    assert "first reply" not in trained


def test_example_without_trained_turn_is_a_record_error(encoder: ChatEncoder) -> None:
    """An example whose only assistant turn has weight 0 raises RecordError naming it."""
    from finetune_web.errors import RecordError

    example = Example(
        id="nothing-to-learn",
        messages=[
            Message(role="user", content="hi"),
            Message(role="assistant", content="hello", weight=0),
        ],
    )
    with pytest.raises(RecordError, match="nothing-to-learn") as caught:
        encoder.encode(example)
    assert caught.value.reason == "no_assistant"


def test_packed_examples_do_not_see_each_other(encoder: ChatEncoder, model: object) -> None:
    """Each example's logits inside a packed row equal its logits run alone (within 1e-5)."""
    tokenized = [encoder.encode(_example(i, 3 + 4 * i)) for i in range(5)]
    rows = pack_examples(tokenized, seq_len=256)
    assert len(rows) < len(tokenized)
    by_id = {t.id: t for t in tokenized}
    worst = 0.0
    with torch.no_grad():
        for row in rows:
            packed = forward_packed(model, collate([row], pad_token_id=0))[0]
            start = 0
            for example_id in row.example_ids:
                ids = by_id[example_id].input_ids
                alone = forward_packed(
                    model,
                    collate(
                        [
                            type(row)(
                                input_ids=ids,
                                labels=ids,
                                position_ids=range(len(ids)),
                                example_ids=[example_id],
                            )
                        ],
                        pad_token_id=0,
                    ),
                )[0]
                diff = (packed[start : start + len(ids)] - alone).abs().max().item()
                worst = max(worst, diff)
                start += len(ids)
    assert worst <= 1e-5


def test_an_attention_mask_would_leak_between_examples(encoder: ChatEncoder, model: object) -> None:
    """The same packed row run with an all-ones attention mask does mix examples.

    This is why forward_packed passes no mask: the check above would fail
    otherwise, so it is not vacuous.
    """
    tokenized = [encoder.encode(_example(i, 6)) for i in range(2)]
    row = pack_examples(tokenized, seq_len=256)[0]
    batch = collate([row], pad_token_id=0)
    with torch.no_grad():
        good = forward_packed(model, batch)
        leaky = model(  # type: ignore[operator]
            input_ids=batch["input_ids"],
            position_ids=batch["position_ids"],
            attention_mask=torch.ones_like(batch["input_ids"]),
            use_cache=False,
        ).logits
    second = len(tokenized[0].input_ids)
    assert (good[0, second:] - leaky[0, second:]).abs().max().item() > 1e-3


def test_token_stats_match_a_direct_cross_entropy(encoder: ChatEncoder, model: object) -> None:
    """token_stats sums the next-token loss over trained labels and counts argmax hits."""
    tokenized = encoder.encode(_example(2, 4))
    rows = pack_examples([tokenized], seq_len=256)
    batch = collate(rows, pad_token_id=0)
    with torch.no_grad():
        logits = forward_packed(model, batch)
        loss_sum, correct, count = token_stats(logits, batch["labels"])
    labels = torch.tensor(tokenized.labels)
    targets = labels[1:]
    keep = targets != IGNORE_INDEX
    expected = torch.nn.functional.cross_entropy(
        logits[0, :-1][keep].float(), targets[keep], reduction="sum"
    )
    assert count == int(keep.sum())
    assert count == sum(1 for label in tokenized.labels[1:] if label != IGNORE_INDEX)
    assert abs(loss_sum.item() - expected.item()) < 1e-4
    hits = int((logits[0, :-1][keep].argmax(-1) == targets[keep]).sum())
    assert correct == hits


def test_collate_pads_rows_without_mask(encoder: ChatEncoder) -> None:
    """A shorter row is padded with the pad id, label -100 and fresh position ids; no mask key."""
    tokenized = [encoder.encode(_example(i, 2 + 10 * i)) for i in range(2)]
    rows = pack_examples(tokenized, seq_len=max(len(t.input_ids) for t in tokenized))
    assert len(rows) == 2
    batch = collate(rows, pad_token_id=7)
    assert set(batch) == {"input_ids", "labels", "position_ids"}
    short = min(range(2), key=lambda i: len(rows[i].input_ids))
    n = len(rows[short].input_ids)
    width = batch["input_ids"].shape[1]
    assert batch["input_ids"][short, n:].tolist() == [7] * (width - n)
    assert batch["labels"][short, n:].tolist() == [IGNORE_INDEX] * (width - n)
    assert batch["position_ids"][short, n:].tolist() == list(range(width - n))
