"""finetune_web: turn web data into fine-tuned language models.

Sources read web data as streams of records; transformers clean, filter,
deduplicate and shape them into chat examples; formats write and validate
provider-ready files with exact token counts and cost estimates; a fluent,
immutable :class:`Pipeline` composes it all and reports what was kept,
what was rejected and why.
"""

from importlib.metadata import PackageNotFoundError, version

from finetune_web._executor import LocalExecutor
from finetune_web.config import RunConfig, load_config
from finetune_web.errors import (
    AccountingError,
    ConfigError,
    ContractError,
    DecodeError,
    ErrorContext,
    FinetuneWebError,
    MissingDependencyError,
    PluginError,
    RecordError,
    SourceError,
    StepError,
    UnknownModelError,
    ValidationError,
    error_context,
)
from finetune_web.formats import (
    Estimate,
    ModelSpec,
    TokenCounter,
    ValidationReport,
    estimate_file,
    read_chat_jsonl,
    resolve_model,
    validate_file,
    write_chat_jsonl,
)
from finetune_web.interfaces import (
    Backend,
    ChatModel,
    Evaluator,
    Packer,
    Source,
    Tokenizer,
    Transformer,
)
from finetune_web.manifest import Manifest
from finetune_web.packing import BestFitPacker
from finetune_web.pipeline import ErrorPolicy, Pipeline
from finetune_web.plugins import Family, Registry
from finetune_web.records import (
    Document,
    EvalResult,
    Example,
    FineTunedModel,
    Location,
    Message,
    MetricEvent,
    Pack,
    Preference,
    Record,
    Rejection,
    Split,
    Tokenized,
    ToolCall,
)
from finetune_web.report import OutputFile, RunReport, StepReport
from finetune_web.sources import ChatJsonlSource, CsvSource, DpoJsonlSource, JsonlSource, JsonSource
from finetune_web.transforms import (
    CleanText,
    ExactDedup,
    HashSplit,
    LanguageFilter,
    MixWith,
    NearDedup,
    QualityFilter,
    RedactPII,
    TemplateTransformer,
    TruncateToTokens,
    keep_if,
    map_records,
)

try:
    __version__ = version("finetune-web")
except PackageNotFoundError:  # running from a source tree that is not installed
    __version__ = "0.0.0"

__all__ = [
    "AccountingError",
    "Backend",
    "BestFitPacker",
    "ChatJsonlSource",
    "ChatModel",
    "CleanText",
    "ConfigError",
    "ContractError",
    "CsvSource",
    "DecodeError",
    "Document",
    "DpoJsonlSource",
    "ErrorContext",
    "ErrorPolicy",
    "Estimate",
    "EvalResult",
    "Evaluator",
    "ExactDedup",
    "Example",
    "Family",
    "FineTunedModel",
    "FinetuneWebError",
    "HashSplit",
    "JsonSource",
    "JsonlSource",
    "LanguageFilter",
    "LocalExecutor",
    "Location",
    "Manifest",
    "Message",
    "MetricEvent",
    "MissingDependencyError",
    "MixWith",
    "ModelSpec",
    "NearDedup",
    "OutputFile",
    "Pack",
    "Packer",
    "Pipeline",
    "PluginError",
    "Preference",
    "QualityFilter",
    "Record",
    "RecordError",
    "RedactPII",
    "Registry",
    "Rejection",
    "RunConfig",
    "RunReport",
    "Source",
    "SourceError",
    "Split",
    "StepError",
    "StepReport",
    "TemplateTransformer",
    "TokenCounter",
    "Tokenized",
    "Tokenizer",
    "ToolCall",
    "Transformer",
    "TruncateToTokens",
    "UnknownModelError",
    "ValidationError",
    "ValidationReport",
    "__version__",
    "error_context",
    "estimate_file",
    "keep_if",
    "load_config",
    "map_records",
    "read_chat_jsonl",
    "resolve_model",
    "validate_file",
    "write_chat_jsonl",
]
