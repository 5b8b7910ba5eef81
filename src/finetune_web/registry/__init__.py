"""The model registry: fine-tuned models, their lineage, scores and channels, in one SQLite file.

Every fine-tuned model (OpenAI or local) is registered with where it came
from: the dataset manifest hash, the pipeline description, base model,
backend, job id, hyperparameters and training metrics; evaluation scores
are added later.  A *channel* ("product-writer", "staging"...) names the
model in use for a purpose: :meth:`ModelRegistry.promote` points it at a
model, :meth:`ModelRegistry.rollback` returns it to the model it pointed at
before, and :meth:`ModelRegistry.history` lists every change.

The file is opened per operation (the registry object holds only its
path, so it pickles), in WAL mode, and every write is one ``BEGIN
IMMEDIATE`` transaction with a busy timeout: several processes can write
at once and no row is lost.
"""

from finetune_web.registry._records import (
    ChannelEvent,
    ModelNotFoundError,
    RegisteredModel,
    RegistryError,
    Score,
)
from finetune_web.registry._sqlite import ModelRegistry

__all__ = [
    "ChannelEvent",
    "ModelNotFoundError",
    "ModelRegistry",
    "RegisteredModel",
    "RegistryError",
    "Score",
]
