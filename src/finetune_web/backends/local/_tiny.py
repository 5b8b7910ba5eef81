"""Build a tiny chat model offline: a BPE tokenizer trained on the spot and a small Llama.

The model is random (untrained) and only a few hundred thousand to a few
million parameters: it exists so that tests, documentation and smoke runs can
exercise the whole local path (tokenize, pack, train, save, reload, generate)
without downloading anything.  Its directory holds ``SMOKE_TEST_MODEL.txt``
so nobody mistakes it for a real model.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterable
from pathlib import Path

from finetune_web.backends.local._deps import require_local

__all__ = ["CHAT_TEMPLATE", "SMOKE_TEST_MARKER", "build_tiny_model", "is_smoke_test_model"]

#: The file that marks a directory as a smoke-test model.
SMOKE_TEST_MARKER = "SMOKE_TEST_MODEL.txt"

#: A ChatML-style template: each turn is ``<|im_start|>role\\ncontent<|im_end|>\\n``.
CHAT_TEMPLATE = (
    "{% for message in messages %}"
    "{{ '<|im_start|>' + message['role'] + '\\n' }}"
    "{% if message['content'] is string %}{{ message['content'] }}"
    "{% elif message['content'] %}{% for part in message['content'] %}"
    "{% if part['type'] == 'text' %}{{ part['text'] }}{% endif %}{% endfor %}{% endif %}"
    "{% if message['tool_calls'] is defined and message['tool_calls'] %}"
    "{% for call in message['tool_calls'] %}"
    "{{ '<tool_call>' + call['function']['name'] + ' ' }}"
    "{{ call['function']['arguments'] + '</tool_call>' }}"
    "{% endfor %}{% endif %}"
    "{{ '<|im_end|>\\n' }}"
    "{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}"
)

_SPECIAL = ["<|endoftext|>", "<|im_start|>", "<|im_end|>", "<|pad|>"]

_CORPUS = (
    "The store sells lamps, chairs, kettles and desks made of oak, steel and glass.",
    "Write a short description of the product for the online catalogue.",
    "This kettle boils a litre of water in three minutes and switches off by itself.",
    "What is the capital of France? The capital of France is Paris.",
    "Summarise the passage in two sentences, keeping the names and the numbers.",
    "The river rises in the mountains and reaches the sea after four hundred kilometres.",
    "A good answer is short, accurate and polite; it never invents facts.",
    "Question: which option is correct? Answer: the correct option is B.",
    "Our lamp has a dimmer, a warm light and a cable two metres long.",
    "The meeting starts at nine, lasts an hour and ends with questions.",
    "Die Lampe ist hell. La lampe est claire. Лампа яркая. ランプは明るい。",
    "Numbers: 0 1 2 3 4 5 6 7 8 9 10 100 1000; prices like $19.99 and 5%.",
    "system user assistant tool function name arguments content",
)


def is_smoke_test_model(path: str | Path) -> bool:
    """Return whether ``path`` is a model directory made by :func:`build_tiny_model`."""
    return (Path(path) / SMOKE_TEST_MARKER).is_file()


def build_tiny_model(
    directory: str | Path,
    *,
    corpus: Iterable[str] | None = None,
    vocab_size: int = 512,
    hidden_size: int = 64,
    num_layers: int = 2,
    num_heads: int = 4,
    max_positions: int = 1024,
    seed: int = 0,
) -> Path:
    """Build a small random Llama-style chat model and its tokenizer, offline.

    A byte-level BPE tokenizer is trained with ``tokenizers`` on ``corpus``
    (a few built-in sentences when ``None``), given a ChatML-style chat
    template (:data:`CHAT_TEMPLATE`) whose end-of-turn token ``<|im_end|>``
    is also the end-of-sequence token, and saved with the model.

    Args:
        directory: where to save the model and tokenizer (created if needed).
        corpus: texts to train the tokenizer on.
        vocab_size: tokenizer vocabulary size (the model's embedding size follows it).
        hidden_size: model width; ``num_heads`` must divide it.
        num_layers: transformer layers.
        num_heads: attention heads.
        max_positions: the longest sequence the model accepts.
        seed: seeds the weights, so the same arguments give the same model.

    Returns:
        ``directory`` as a :class:`~pathlib.Path`, loadable with
        ``AutoModelForCausalLM.from_pretrained`` and ``AutoTokenizer.from_pretrained``.

    Raises:
        MissingDependencyError: torch or transformers is missing.
    """
    require_local("build_tiny_model")
    import torch
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers
    from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

    target = Path(directory)
    target.mkdir(parents=True, exist_ok=True)
    texts = list(corpus) if corpus is not None else list(_CORPUS)

    tokenizer = Tokenizer(models.BPE())
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tokenizer.decoder = decoders.ByteLevel()
    tokenizer.post_processor = processors.ByteLevel(trim_offsets=False)
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=_SPECIAL,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tokenizer.train_from_iterator(itertools.chain(texts, [CHAT_TEMPLATE]), trainer=trainer)
    fast = PreTrainedTokenizerFast(  # type: ignore[no-untyped-call]
        tokenizer_object=tokenizer,
        bos_token="<|endoftext|>",
        eos_token="<|im_end|>",
        pad_token="<|pad|>",
        unk_token=None,
        additional_special_tokens=["<|im_start|>"],
        model_max_length=max_positions,
    )
    fast.chat_template = CHAT_TEMPLATE
    fast.save_pretrained(target)

    config = LlamaConfig(
        vocab_size=len(fast),
        hidden_size=hidden_size,
        intermediate_size=hidden_size * 2,
        num_hidden_layers=num_layers,
        num_attention_heads=num_heads,
        num_key_value_heads=num_heads,
        max_position_embeddings=max_positions,
        tie_word_embeddings=False,
        bos_token_id=fast.bos_token_id,
        eos_token_id=fast.eos_token_id,
        pad_token_id=fast.pad_token_id,
    )
    config._attn_implementation = "sdpa"
    generator_state = torch.random.get_rng_state()
    try:
        torch.manual_seed(seed)
        model = LlamaForCausalLM(config)
    finally:
        torch.random.set_rng_state(generator_state)
    model.generation_config.pad_token_id = fast.pad_token_id
    model.save_pretrained(target)
    (target / SMOKE_TEST_MARKER).write_text(
        "This is a random smoke-test model built offline by finetune_web's build_tiny_model.\n"
        "Its outputs are meaningless; it exists to exercise the training path end to end.\n",
        encoding="utf-8",
    )
    return target
