"""Transformers: steps that turn a stream of records into a stream of records."""

from finetune_web.transforms.adapters import KeepIf, MapRecords, keep_if, map_records
from finetune_web.transforms.article_qa import ArticleSection, ArticleToQA, article_sections
from finetune_web.transforms.clean import CleanText
from finetune_web.transforms.dedup import ExactDedup, normalize_for_dedup
from finetune_web.transforms.extract import EXTRACT_REASONS, ExtractMainText
from finetune_web.transforms.language import LanguageFilter
from finetune_web.transforms.mix import MixBy, MixWith, record_tokens
from finetune_web.transforms.near_dedup import NearDedup, candidate_probability, choose_bands
from finetune_web.transforms.passages import PassageToExamples, split_near_middle
from finetune_web.transforms.pii import RedactPII
from finetune_web.transforms.product import ProductToDescription, product_features
from finetune_web.transforms.quality import QualityFilter
from finetune_web.transforms.split import HashSplit
from finetune_web.transforms.template import TemplateTransformer, lookup_field
from finetune_web.transforms.truncate import TruncateToTokens, utf8_prefix

__all__ = [
    "EXTRACT_REASONS",
    "ArticleSection",
    "ArticleToQA",
    "CleanText",
    "ExactDedup",
    "ExtractMainText",
    "HashSplit",
    "KeepIf",
    "LanguageFilter",
    "MapRecords",
    "MixBy",
    "MixWith",
    "NearDedup",
    "PassageToExamples",
    "ProductToDescription",
    "QualityFilter",
    "RedactPII",
    "TemplateTransformer",
    "TruncateToTokens",
    "article_sections",
    "candidate_probability",
    "choose_bands",
    "keep_if",
    "lookup_field",
    "map_records",
    "normalize_for_dedup",
    "product_features",
    "record_tokens",
    "split_near_middle",
    "utf8_prefix",
]
