"""Training backends: fine-tune a model on examples and get a ``FineTunedModel`` back.

:class:`OpenAIBackend` trains through OpenAI's fine-tuning API, Azure OpenAI,
or any OpenAI-compatible endpoint, and resumes after a crash without
uploading or creating anything twice.  :mod:`finetune_web.backends.results`
reads a job's result CSV into metric events and plots them.
"""

from finetune_web.backends._openai_errors import (
    NEVER_RETRY_CODES,
    DailyRateLimitError,
    FineTuneJobError,
    InvalidTrainingFileError,
    JobCancelledError,
    ProviderError,
    QuotaExceededError,
    RunStateError,
    TrainingNotAvailableError,
)
from finetune_web.backends._openai_monitor import (
    Checkpoint,
    JobEvent,
    JobSnapshot,
    PollSchedule,
    ProgressLine,
)
from finetune_web.backends._openai_options import (
    RUN_METADATA_KEY,
    AzureConfig,
    OpenAIHyperparameters,
)
from finetune_web.backends._openai_retry import RetryPolicy
from finetune_web.backends._openai_state import STATE_FILE
from finetune_web.backends._openai_upload import DEFAULT_UPLOAD_THRESHOLD, MAX_PART_SIZE
from finetune_web.backends.openai import OPENAI_BASE_URL, OpenAIBackend
from finetune_web.backends.results import (
    decode_result_file,
    metric_event_from_data,
    parse_result_csv,
    plot_metrics,
    read_result_csv,
)

__all__ = [
    "DEFAULT_UPLOAD_THRESHOLD",
    "MAX_PART_SIZE",
    "NEVER_RETRY_CODES",
    "OPENAI_BASE_URL",
    "RUN_METADATA_KEY",
    "STATE_FILE",
    "AzureConfig",
    "Checkpoint",
    "DailyRateLimitError",
    "FineTuneJobError",
    "InvalidTrainingFileError",
    "JobCancelledError",
    "JobEvent",
    "JobSnapshot",
    "OpenAIBackend",
    "OpenAIHyperparameters",
    "PollSchedule",
    "ProgressLine",
    "ProviderError",
    "QuotaExceededError",
    "RetryPolicy",
    "RunStateError",
    "TrainingNotAvailableError",
    "decode_result_file",
    "metric_event_from_data",
    "parse_result_csv",
    "plot_metrics",
    "read_result_csv",
]
