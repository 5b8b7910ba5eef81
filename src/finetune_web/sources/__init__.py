"""Sources: where documents come from.

A source is a frozen record naming its input and options; ``read()`` streams
records and :class:`~finetune_web.records.Rejection` records.

- :class:`JsonlSource`: JSON Lines / NDJSON, one object per line.
- :class:`JsonSource`: a JSON array of objects (or an object wrapping one),
  streamed, so huge files need little memory.
- :class:`CsvSource`: CSV/TSV rows keyed by the header.
- :class:`ChatJsonlSource`, :class:`DpoJsonlSource`: existing fine-tuning
  datasets, read back as examples.
"""

from finetune_web.sources.brightdata import (
    BRIGHTDATA_BASE_URL,
    BRIGHTDATA_TOKEN_ENV,
    BrightDataSource,
)
from finetune_web.sources.csv import CsvSource
from finetune_web.sources.datasets import ChatJsonlSource, DpoJsonlSource
from finetune_web.sources.files import DEFAULT_ERROR_KEY, JsonlSource
from finetune_web.sources.html_files import DEFAULT_HTML_SUFFIXES, HtmlFileSource
from finetune_web.sources.http import FetchStats, HttpSource
from finetune_web.sources.json import JSON_LINES_SUFFIXES, JsonLayout, JsonSource
from finetune_web.sources.transcripts import (
    DEFAULT_CAPTION_SUFFIXES,
    Cue,
    TranscriptSource,
    parse_transcript,
)

__all__ = [
    "BRIGHTDATA_BASE_URL",
    "BRIGHTDATA_TOKEN_ENV",
    "DEFAULT_CAPTION_SUFFIXES",
    "DEFAULT_ERROR_KEY",
    "DEFAULT_HTML_SUFFIXES",
    "JSON_LINES_SUFFIXES",
    "BrightDataSource",
    "ChatJsonlSource",
    "CsvSource",
    "Cue",
    "DpoJsonlSource",
    "FetchStats",
    "HtmlFileSource",
    "HttpSource",
    "JsonLayout",
    "JsonSource",
    "JsonlSource",
    "TranscriptSource",
    "parse_transcript",
]
