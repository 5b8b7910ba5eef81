"""An on-disk cache of chat completions: one JSON file per request, keyed by its SHA-256."""

from __future__ import annotations

import hashlib
import json
import logging
import os
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import attrs

from finetune_web.errors import ErrorContext, FinetuneWebError
from finetune_web.formats import message_to_json, messages_from_json
from finetune_web.records import Message

__all__ = ["ResponseCache", "request_key"]

log = logging.getLogger("finetune_web.evaluation")


def request_key(request: Mapping[str, Any]) -> str:
    """Return the SHA-256 of a request's canonical JSON (model, messages, parameters...)."""
    text = json.dumps(request, sort_keys=True, ensure_ascii=False, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()


@attrs.frozen
class ResponseCache:
    """Replies stored as ``<directory>/<key[:2]>/<key>.json``.

    A file holds the request (so it can be read) and the reply.  Files are
    written to a temporary name and renamed, so a crash never leaves half a
    reply, and threads or processes can share the directory.  A file that
    cannot be read is treated as a miss (and overwritten by the next reply).

    Attributes:
        directory: the cache folder (created when the first reply is stored).
    """

    directory: Path = attrs.field(converter=Path)

    def _path(self, key: str) -> Path:
        return self.directory / key[:2] / f"{key}.json"

    def get(self, key: str) -> Message | None:
        """Return the cached reply for ``key``, or ``None``."""
        path = self._path(key)
        try:
            entry = json.loads(path.read_text(encoding="utf-8"))
            return messages_from_json([entry["reply"]], ErrorContext(path=str(path)))[0]
        except FileNotFoundError:
            return None
        except (OSError, ValueError, KeyError, TypeError, FinetuneWebError) as exc:
            log.warning("ignoring unreadable cache file %s: %s", path, exc)
            return None

    def put(self, key: str, request: Mapping[str, Any], reply: Message) -> None:
        """Store ``reply`` for ``key`` (atomically)."""
        path = self._path(key)
        path.parent.mkdir(parents=True, exist_ok=True)
        entry = {"key": key, "request": dict(request), "reply": message_to_json(reply)}
        handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=".", suffix=".tmp")
        try:
            with os.fdopen(handle, "w", encoding="utf-8") as stream:
                json.dump(entry, stream, ensure_ascii=False)
            os.replace(temporary, path)
        except BaseException:
            Path(temporary).unlink(missing_ok=True)
            raise
