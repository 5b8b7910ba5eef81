"""Transformers: steps that turn a stream of records into a stream of records."""

from finetune_web.transforms.adapters import KeepIf, MapRecords, keep_if, map_records
from finetune_web.transforms.clean import CleanText
from finetune_web.transforms.dedup import ExactDedup, normalize_for_dedup
from finetune_web.transforms.language import LanguageFilter
from finetune_web.transforms.mix import MixBy, MixWith, record_tokens
from finetune_web.transforms.near_dedup import NearDedup, candidate_probability, choose_bands
from finetune_web.transforms.pii import RedactPII
from finetune_web.transforms.quality import QualityFilter
from finetune_web.transforms.split import HashSplit
from finetune_web.transforms.template import TemplateTransformer, lookup_field
from finetune_web.transforms.truncate import TruncateToTokens, utf8_prefix

__all__ = [
    "CleanText",
    "ExactDedup",
    "HashSplit",
    "KeepIf",
    "LanguageFilter",
    "MapRecords",
    "MixBy",
    "MixWith",
    "NearDedup",
    "QualityFilter",
    "RedactPII",
    "TemplateTransformer",
    "TruncateToTokens",
    "candidate_probability",
    "choose_bands",
    "keep_if",
    "lookup_field",
    "map_records",
    "normalize_for_dedup",
    "record_tokens",
    "utf8_prefix",
]
