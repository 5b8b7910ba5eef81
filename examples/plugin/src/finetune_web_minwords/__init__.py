"""An example finetune_web plugin: reject examples whose answer is too short."""

from __future__ import annotations

from collections.abc import Iterable, Iterator

import attrs

from finetune_web import Example, Record, Rejection

__all__ = ["MinWordsFilter"]


@attrs.frozen(kw_only=True)
class MinWordsFilter:
    """Reject examples whose last assistant message has fewer than ``min_words`` words."""

    min_words: int = 5
    name: str = "min_words"

    def transform(self, records: Iterable[Record]) -> Iterator[Record | Rejection]:
        """Pass long-enough examples on; reject the others with ``answer_too_short``."""
        for record in records:
            if not isinstance(record, Example):
                yield record
                continue
            answers = [m for m in record.messages if m.role == "assistant"]
            words = len(answers[-1].text.split()) if answers else 0
            if words >= self.min_words:
                yield record
            else:
                yield Rejection(
                    record_id=record.id,
                    step=self.name,
                    reason="answer_too_short",
                    message=f"{record.id}: answer has {words} words, fewer than {self.min_words}",
                    location=record.location,
                )
