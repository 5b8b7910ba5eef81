"""LocalChatModel on a tiny offline model: generation, adapters, scores checked against torch."""

from __future__ import annotations

import json
import pickle
import warnings
from pathlib import Path

import pytest

from finetune_web.backends.local import build_tiny_model
from finetune_web.backends.local._load import end_of_turn_ids, resolve_model
from finetune_web.backends.local.chat import LocalChatModel
from finetune_web.errors import ConfigError
from finetune_web.evaluation import BatchChatModel
from finetune_web.interfaces import ChatModel, LogLikelihoodModel, TokenScoringModel
from finetune_web.records import Example, Message

torch = pytest.importorskip("torch")


def make_adapter(base: Path, directory: Path) -> Path:
    """Save a LoRA adapter with random (non-zero) weights for ``base``; no training needed."""
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(base)
    config = LoraConfig(r=4, target_modules="all-linear", init_lora_weights=False)
    with warnings.catch_warnings():
        # peft reads an attribute transformers 5 deprecates when it wraps a model.
        warnings.filterwarnings("ignore", ".*is_gradient_checkpointing.*", FutureWarning)
        torch.manual_seed(1)
        get_peft_model(model, config).save_pretrained(directory)
    return directory


@pytest.fixture(scope="module")
def base(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny random chat model, built offline."""
    return build_tiny_model(tmp_path_factory.mktemp("chat-base"))


@pytest.fixture(scope="module")
def adapter(base: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A random LoRA adapter trained on nothing, saved for ``base``."""
    return make_adapter(base, tmp_path_factory.mktemp("chat-adapter"))


@pytest.fixture(scope="module")
def model(base: Path) -> LocalChatModel:
    """The base model, greedy, short replies, on CPU."""
    return LocalChatModel(model=str(base), max_new_tokens=8, device="cpu")


@pytest.fixture(scope="module")
def tuned(adapter: Path) -> LocalChatModel:
    """The base model with the adapter, found through the adapter directory alone."""
    return LocalChatModel(model=str(adapter), max_new_tokens=8, device="cpu")


PROMPTS = [
    [Message(role="user", content="Describe the lamp.")],
    [
        Message(role="system", content="Answer briefly."),
        Message(role="user", content="What is the capital of France? Say it in one word."),
    ],
    [Message(role="user", content="Hi")],
]


def _example(question: str, answer: str, name: str) -> Example:
    return Example(
        id=name,
        messages=[
            Message(role="system", content="You write short product blurbs."),
            Message(role="user", content=question),
            Message(role="assistant", content=answer),
        ],
    )


def test_cheap_and_picklable_before_loading(base: Path) -> None:
    """Building loads nothing; the object pickles and compares by its settings only."""
    model = LocalChatModel(model=str(base), device="cpu")
    copy = pickle.loads(pickle.dumps(model))
    assert copy == model and copy._lazy.value is None and model._lazy.value is None
    assert isinstance(model, ChatModel) and isinstance(model, BatchChatModel)
    assert isinstance(model, LogLikelihoodModel) and isinstance(model, TokenScoringModel)


def test_model_id_names_base_and_adapter(base: Path, adapter: Path) -> None:
    """model_id is the base, plus ``+adapter`` whether the adapter is given or found."""
    assert LocalChatModel(model=str(base)).model_id == str(base)
    explicit = LocalChatModel(model=str(base), adapter=str(adapter))
    assert explicit.model_id == f"{base}+{adapter}"
    assert LocalChatModel(model=str(adapter)).model_id == f"{base}+{adapter}"
    assert LocalChatModel(model=str(adapter), name="my-tune").model_id == "my-tune"
    assert json.loads((adapter / "adapter_config.json").read_text())[
        "base_model_name_or_path"
    ] == str(base)


def test_greedy_replies_repeat_and_batching_changes_nothing(model: LocalChatModel) -> None:
    """Greedy decoding gives the same reply every time, alone or in a batch of any order."""
    singles = [model.complete(prompt) for prompt in PROMPTS]
    assert all(reply.role == "assistant" for reply in singles)
    assert model.complete(PROMPTS[1]) == singles[1]
    assert model.complete_many(PROMPTS) == singles
    assert model.complete_many(PROMPTS[::-1]) == singles[::-1]


def test_sampling_repeats_with_its_seed(base: Path) -> None:
    """With a temperature, a fixed seed gives the same reply to a prompt in any batch."""
    sampler = LocalChatModel(
        model=str(base), temperature=1.0, seed=5, max_new_tokens=10, device="cpu"
    )
    first = sampler.complete(PROMPTS[0])
    assert sampler.complete(PROMPTS[0]) == first
    assert sampler.complete_many([PROMPTS[1], PROMPTS[0]])[1] == first


def test_reply_is_bounded_and_stops_at_end_of_turn(model: LocalChatModel) -> None:
    """A reply has at most max_new_tokens tokens and is cut at the first end-of-turn token."""
    loaded = model.load()
    reply = model.complete(PROMPTS[0])
    assert len(loaded.tokenizer(reply.text, add_special_tokens=False)["input_ids"]) <= 8
    words = loaded.tokenizer("lamp chair", add_special_tokens=False)["input_ids"]
    stop = loaded.tokenizer.convert_tokens_to_ids("<|im_end|>")
    assert stop in loaded.stop_ids
    assert model._decode(loaded, [*words, stop, *words]) == "lamp chair"


def test_end_of_turn_ids_include_chatml_marker(model: LocalChatModel) -> None:
    """The tiny model's replies end at <|im_end|>, which is also its end-of-sequence token."""
    loaded = model.load()
    ids = end_of_turn_ids(loaded.model, loaded.tokenizer)
    assert ids == [loaded.tokenizer.convert_tokens_to_ids("<|im_end|>")]


def test_adapter_changes_the_model(model: LocalChatModel, tuned: LocalChatModel) -> None:
    """The same prompts and reply score differently once the (random) adapter is loaded."""
    base_score = model.loglikelihood(PROMPTS[0], "A warm lamp.")
    tuned_score = tuned.loglikelihood(PROMPTS[0], "A warm lamp.")
    assert base_score[1] == tuned_score[1]
    assert base_score[0] != pytest.approx(tuned_score[0])


def _manual_loglikelihood(model: LocalChatModel, context: list[Message], reply: str) -> float:
    """Sum of log-softmax probabilities of the reply's tokens, computed directly with torch."""
    loaded = model.load()
    text = loaded.tokenizer.apply_chat_template(
        [{"role": m.role, "content": m.text} for m in context],
        add_generation_prompt=True,
        tokenize=False,
    )
    context_ids = loaded.tokenizer(text, add_special_tokens=False)["input_ids"]
    ids = loaded.tokenizer(text + reply, add_special_tokens=False)["input_ids"]
    with torch.no_grad():
        logits = loaded.model(input_ids=torch.tensor([ids])).logits[0]
    logprobs = torch.log_softmax(logits.float(), dim=-1)
    return sum(
        float(logprobs[position - 1, ids[position]])
        for position in range(len(context_ids), len(ids))
    )


def test_loglikelihood_matches_a_direct_computation(model: LocalChatModel) -> None:
    """loglikelihood is the summed log-softmax of the reply's tokens after the generation prompt."""
    for prompt, reply in [(PROMPTS[0], "A warm lamp with a dimmer."), (PROMPTS[1], "Paris")]:
        total, count = model.loglikelihood(prompt, reply)
        assert total == pytest.approx(_manual_loglikelihood(model, prompt, reply), abs=1e-4)
        loaded = model.load()
        assert count == len(loaded.tokenizer(reply, add_special_tokens=False)["input_ids"])
    batched = model.loglikelihood_many([(PROMPTS[0], "x"), (PROMPTS[1], "Paris"), (PROMPTS[2], "")])
    assert batched[1][0] == pytest.approx(model.loglikelihood(PROMPTS[1], "Paris")[0], abs=1e-4)
    assert batched[2] == (0.0, 0)


def test_token_stats_match_torch_cross_entropy(model: LocalChatModel) -> None:
    """token_stats equals torch cross-entropy and argmax hits over the assistant's tokens."""
    examples = [
        _example("Describe product 1.", "Product 1 is a warm lamp.", "a"),
        _example("Describe the kettle in detail please.", "It boils water.", "b"),
    ]
    stats = model.token_stats(examples)
    loaded = model.load()
    for example, (loss, correct, count) in zip(examples, stats, strict=True):
        tokenized = loaded.encoder.encode(example)
        ids = torch.tensor([tokenized.input_ids])
        labels = torch.tensor(tokenized.labels)
        with torch.no_grad():
            logits = loaded.model(input_ids=ids).logits[0].float()
        target = labels[1:]
        keep = target != -100
        expected = torch.nn.functional.cross_entropy(
            logits[:-1][keep], target[keep], reduction="sum"
        )
        assert count == int(keep.sum()) > 0
        assert loss == pytest.approx(float(expected), rel=1e-5)
        assert correct == int((logits[:-1].argmax(-1)[keep] == target[keep]).sum())


def test_long_inputs_keep_their_end(base: Path) -> None:
    """A prompt longer than the model accepts is cut from its start and still scored."""
    short = LocalChatModel(model=str(base), device="cpu", max_new_tokens=4)
    loaded = short.load()
    long_text = "The river rises in the mountains. " * 400
    total, count = short.loglikelihood([Message(role="user", content=long_text)], "Paris")
    assert count > 0 and total < 0
    ((_, _, scored),) = short.token_stats([_example(long_text, "Paris", "long")])
    assert scored > 0
    assert loaded.max_length == 1024


def test_bad_models_and_adapters_raise_config_errors(
    base: Path, adapter: Path, tmp_path: Path
) -> None:
    """A missing or empty model directory, a non-adapter, or two adapters give a ConfigError."""
    with pytest.raises(ConfigError, match="no such model directory"):
        LocalChatModel(model=str(tmp_path / "nowhere"), device="cpu").load()
    with pytest.raises(ConfigError, match="cannot load the tokenizer"):
        LocalChatModel(model=str(tmp_path), device="cpu").load()
    with pytest.raises(ConfigError, match="not a PEFT adapter"):
        resolve_model(str(base), str(tmp_path))
    with pytest.raises(ConfigError, match="is an adapter too"):
        resolve_model(str(adapter), str(adapter))
    broken = tmp_path / "broken"
    broken.mkdir()
    (broken / "adapter_config.json").write_text("{}")
    with pytest.raises(ConfigError, match="base_model_name_or_path"):
        resolve_model(str(broken))
    with pytest.raises(ConfigError, match="max_new_tokens"):
        LocalChatModel(model=str(base), max_new_tokens=0)
