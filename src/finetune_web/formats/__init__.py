"""Training-file formats: OpenAI chat, DPO and prompt/completion JSONL.

Read and write the formats, count tokens like the service does, validate a
file before uploading it, and estimate what training on it will cost.
"""

from finetune_web.formats._jsonl import JsonlWriter, WriteResult
from finetune_web.formats.chat import (
    example_from_json,
    example_to_json,
    message_to_json,
    messages_from_json,
    read_chat_jsonl,
    read_training_file,
    tools_from_json,
    write_chat_jsonl,
)
from finetune_web.formats.completion import (
    completion_from_json,
    example_to_completion,
    read_completion_jsonl,
    write_completion_jsonl,
)
from finetune_web.formats.dpo import (
    preference_from_json,
    preference_to_example,
    preference_to_json,
    read_dpo_jsonl,
    write_dpo_jsonl,
)
from finetune_web.formats.estimate import (
    Distribution,
    Estimate,
    EstimateBuilder,
    default_epochs,
    estimate_examples,
    estimate_file,
)
from finetune_web.formats.models import (
    JOB_CREATION_ENDS,
    MODEL_TABLE,
    PRICES_AS_OF,
    ModelSpec,
    job_creation_warning,
    resolve_model,
    shutdown_warning,
)
from finetune_web.formats.tokens import (
    OPENAI_SPECIAL_TOKENS,
    ExampleTokens,
    PreparedBatch,
    TiktokenTokenizer,
    TokenCounter,
    example_texts,
)
from finetune_web.formats.validate import (
    MIN_EXAMPLES,
    RECOMMENDED_EXAMPLES,
    Issue,
    ValidationBuilder,
    ValidationReport,
    validate_examples,
    validate_file,
)

__all__ = [
    "JOB_CREATION_ENDS",
    "MIN_EXAMPLES",
    "MODEL_TABLE",
    "OPENAI_SPECIAL_TOKENS",
    "PRICES_AS_OF",
    "RECOMMENDED_EXAMPLES",
    "Distribution",
    "Estimate",
    "EstimateBuilder",
    "ExampleTokens",
    "Issue",
    "JsonlWriter",
    "ModelSpec",
    "PreparedBatch",
    "TiktokenTokenizer",
    "TokenCounter",
    "ValidationBuilder",
    "ValidationReport",
    "WriteResult",
    "completion_from_json",
    "default_epochs",
    "estimate_examples",
    "estimate_file",
    "example_from_json",
    "example_texts",
    "example_to_completion",
    "example_to_json",
    "job_creation_warning",
    "message_to_json",
    "messages_from_json",
    "preference_from_json",
    "preference_to_example",
    "preference_to_json",
    "read_chat_jsonl",
    "read_completion_jsonl",
    "read_dpo_jsonl",
    "read_training_file",
    "resolve_model",
    "shutdown_warning",
    "tools_from_json",
    "validate_examples",
    "validate_file",
    "write_chat_jsonl",
    "write_completion_jsonl",
    "write_dpo_jsonl",
]
