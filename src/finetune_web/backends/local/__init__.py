"""Local fine-tuning with transformers and peft: LoRA, QLoRA or full, on packed rows.

Everything here imports torch, transformers and peft lazily, so importing this
package is cheap and works without the ``local`` extra; using it without the
extra raises :class:`~finetune_web.errors.MissingDependencyError` with the
command to run.
"""

from finetune_web.backends.local._batches import (
    collate,
    forward_packed,
    pack_examples,
    real_tokens,
    token_stats,
)
from finetune_web.backends.local._deps import LOCAL_PIP_HINT, require_local
from finetune_web.backends.local._encode import IGNORE_INDEX, ChatEncoder, message_dicts
from finetune_web.backends.local._tiny import (
    CHAT_TEMPLATE,
    SMOKE_TEST_MARKER,
    build_tiny_model,
    is_smoke_test_model,
)
from finetune_web.backends.local.backend import LocalPEFTBackend, LocalTrainingRun, LoraOptions
from finetune_web.backends.local.chat import LocalChatModel

__all__ = [
    "CHAT_TEMPLATE",
    "IGNORE_INDEX",
    "LOCAL_PIP_HINT",
    "SMOKE_TEST_MARKER",
    "ChatEncoder",
    "LocalChatModel",
    "LocalPEFTBackend",
    "LocalTrainingRun",
    "LoraOptions",
    "build_tiny_model",
    "collate",
    "forward_packed",
    "is_smoke_test_model",
    "message_dicts",
    "pack_examples",
    "real_tokens",
    "require_local",
    "token_stats",
]
