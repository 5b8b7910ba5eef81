"""Evaluation: score a fine-tuned model against its base on the same examples, and report.

Evaluators (each an :class:`~finetune_web.interfaces.Evaluator` working on
any :class:`~finetune_web.interfaces.ChatModel`): :class:`ExactMatchEvaluator`,
:class:`MultipleChoiceEvaluator`, :class:`BleuEvaluator`, :class:`ChrfEvaluator`,
:class:`RougeEvaluator` and :class:`JudgeEvaluator`.  :func:`compare` scores
two models on exactly the same examples with a seeded paired bootstrap;
:func:`check_retention` flags what fine-tuning cost on a general set;
:func:`write_report` writes Markdown and a self-contained HTML page.
:class:`OpenAIChatModel` evaluates any OpenAI-compatible endpoint
concurrently, with retries and an on-disk cache.

BLEU/chrF need ``sacrebleu`` and ROUGE needs ``rouge-score``:
``pip install "finetune-web[eval]"``.
"""

from finetune_web.evaluation._cache import ResponseCache
from finetune_web.evaluation._common import BatchChatModel, CorpusEvaluator
from finetune_web.evaluation.api_model import (
    DEFAULT_API_KEY_ENV,
    ChatModelError,
    ChatOptions,
    ChatRetry,
    OpenAIChatModel,
    ProgressCallback,
    StderrProgress,
)
from finetune_web.evaluation.bootstrap import BootstrapInterval, paired_bootstrap
from finetune_web.evaluation.choice import MultipleChoiceEvaluator, extract_choice
from finetune_web.evaluation.compare import (
    Comparison,
    MetricComparison,
    Retention,
    SamplePair,
    check_retention,
    compare,
)
from finetune_web.evaluation.evals_format import load_evals_jsonl
from finetune_web.evaluation.exact import ExactMatchEvaluator, normalize_text
from finetune_web.evaluation.judge import (
    DEFAULT_GRADES,
    DEFAULT_RUBRIC,
    JudgeEvaluator,
    parse_grade,
)
from finetune_web.evaluation.loglik import (
    LogLikelihoodChoiceEvaluator,
    TokenLossEvaluator,
    find_options,
)
from finetune_web.evaluation.report import (
    ReportFiles,
    render_html,
    render_markdown,
    worst_examples,
    write_report,
)
from finetune_web.evaluation.rouge import RougeEvaluator, unicode_rouge_tokens
from finetune_web.evaluation.text_metrics import BleuEvaluator, ChrfEvaluator

__all__ = [
    "DEFAULT_API_KEY_ENV",
    "DEFAULT_GRADES",
    "DEFAULT_RUBRIC",
    "BatchChatModel",
    "BleuEvaluator",
    "BootstrapInterval",
    "ChatModelError",
    "ChatOptions",
    "ChatRetry",
    "ChrfEvaluator",
    "Comparison",
    "CorpusEvaluator",
    "ExactMatchEvaluator",
    "JudgeEvaluator",
    "LogLikelihoodChoiceEvaluator",
    "MetricComparison",
    "MultipleChoiceEvaluator",
    "OpenAIChatModel",
    "ProgressCallback",
    "ReportFiles",
    "ResponseCache",
    "Retention",
    "RougeEvaluator",
    "SamplePair",
    "StderrProgress",
    "TokenLossEvaluator",
    "check_retention",
    "compare",
    "extract_choice",
    "find_options",
    "load_evals_jsonl",
    "normalize_text",
    "paired_bootstrap",
    "parse_grade",
    "render_html",
    "render_markdown",
    "unicode_rouge_tokens",
    "worst_examples",
    "write_report",
]
