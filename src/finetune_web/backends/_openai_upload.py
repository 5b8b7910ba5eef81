"""Upload a training file once: find it by content hash first, resume a multipart upload.

A file is uploaded under the name ``ftw-<sha256[:16]>-<role>.jsonl``.  Before
uploading, the provider's ``fine-tune`` files are listed and a file whose
name carries the same hash (and has the same size) is reused, so content
already uploaded, by this run or another, is never uploaded again.  Files up
to the threshold go through ``files.create``; larger ones through the Uploads
API in parts, each part id saved in the run state as soon as it is known.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Final

import openai
from openai.types import FileObject
from openai.types.uploads import UploadPart

from finetune_web.backends._openai_errors import InvalidTrainingFileError, ProviderError
from finetune_web.backends._openai_retry import Caller
from finetune_web.backends._openai_state import FileState, RunJournal
from finetune_web.errors import ErrorContext, SourceError

__all__ = [
    "DEFAULT_PART_SIZE",
    "DEFAULT_UPLOAD_THRESHOLD",
    "MAX_PART_SIZE",
    "ensure_uploaded",
    "file_digest",
    "file_state",
    "find_uploaded",
]

#: Files larger than this go through the Uploads API (``files.create`` takes up to 512 MB).
DEFAULT_UPLOAD_THRESHOLD = 512 * 1024 * 1024
#: The Uploads API takes parts of at most 64 MB.
MAX_PART_SIZE = 64 * 1024 * 1024
DEFAULT_PART_SIZE = MAX_PART_SIZE
_MIME = "application/jsonl"
_PURPOSE: Final = "fine-tune"
# An upload that cannot be resumed (expired, cancelled, unknown) answers with one of these.
_STALE_UPLOAD = frozenset((400, 404, 409))
log = logging.getLogger("finetune_web.backends.openai")


def file_digest(path: Path, algorithm: str = "sha256") -> tuple[str, int]:
    """Return the hex digest and the size of a file, read in 1 MiB blocks."""
    digest = hashlib.new(algorithm)
    size = 0
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
            size += len(block)
    return digest.hexdigest(), size


def file_state(role: str, path: Path) -> FileState:
    """Return the state of a local file not uploaded yet (its hash and size).

    Raises:
        SourceError: the file cannot be read.
    """
    try:
        sha, size = file_digest(path)
    except OSError as exc:
        raise SourceError(
            f"cannot read the {role} file: {exc.strerror}", ErrorContext(path=str(path))
        ) from exc
    return FileState(role=role, path=str(path), sha256=sha, bytes=size)


def _pages(client: openai.OpenAI, caller: Caller) -> Iterator[FileObject]:
    after: str | None = None
    while True:
        cursor = after

        def fetch(cursor: str | None = cursor) -> openai.pagination.SyncCursorPage[FileObject]:
            if cursor is None:
                return client.files.list(purpose=_PURPOSE)
            return client.files.list(purpose=_PURPOSE, after=cursor)

        page = caller.call("list fine-tune files", fetch)
        yield from page.data
        if not page.data or page.has_more is not True:
            return
        after = page.data[-1].id


def find_uploaded(client: openai.OpenAI, caller: Caller, entry: FileState) -> FileObject | None:
    """Return a usable provider file with ``entry``'s content (same hash prefix and size).

    Files in ``error`` status are skipped; the newest match wins.
    """
    found = [
        item
        for item in _pages(client, caller)
        if item.filename.startswith(entry.name_prefix)
        and item.bytes == entry.bytes
        and item.status != "error"
    ]
    return max(found, key=lambda item: item.created_at) if found else None


def _checked(item: FileObject, entry: FileState, context: ErrorContext) -> FileObject:
    if item.status == "error":
        details = item.status_details or "no details given"
        raise InvalidTrainingFileError(
            f"the provider rejected {entry.path} ({item.id}): {details}",
            context,
            "file_error",
            None,
            f"{entry.role}_file",
        )
    return item


def _upload_small(client: openai.OpenAI, caller: Caller, entry: FileState) -> FileObject:
    def create() -> FileObject:
        with Path(entry.path).open("rb") as handle:
            return client.files.create(file=(entry.filename, handle, _MIME), purpose=_PURPOSE)

    return caller.create_once(
        f"upload {entry.path}",
        create,
        lambda: find_uploaded(client, caller, entry),
        look_first=False,
    )


def _part_sender(client: openai.OpenAI, upload_id: str, chunk: bytes) -> Callable[[], UploadPart]:
    return lambda: client.uploads.parts.create(upload_id, data=chunk)


def _upload_parts(
    client: openai.OpenAI, caller: Caller, journal: RunJournal, entry: FileState, part_size: int
) -> FileObject:
    if entry.upload_id is None:
        upload = caller.call(
            f"start the upload of {entry.path}",
            lambda: client.uploads.create(
                bytes=entry.bytes, filename=entry.filename, mime_type=_MIME, purpose=_PURPOSE
            ),
        )
        entry = journal.update_file(entry.role, upload_id=upload.id, part_ids=())
    upload_id = entry.upload_id
    assert upload_id is not None  # set just above
    parts = list(entry.part_ids)
    digest = hashlib.md5(usedforsecurity=False)
    with Path(entry.path).open("rb") as handle:
        for _ in range(len(parts)):
            digest.update(handle.read(part_size))
        while chunk := handle.read(part_size):
            digest.update(chunk)
            number = len(parts) + 1
            part = caller.call(
                f"upload part {number} of {entry.path}", _part_sender(client, upload_id, chunk)
            )
            parts.append(part.id)
            entry = journal.update_file(entry.role, part_ids=tuple(parts))
    md5 = digest.hexdigest()

    def complete() -> FileObject:
        done = client.uploads.complete(upload_id, part_ids=parts, md5=md5)
        if done.file is None:
            raise InvalidTrainingFileError(
                f"the upload of {entry.path} completed without a file ({done.status})",
                ErrorContext(path=entry.path),
            )
        return done.file

    return caller.create_once(
        f"complete the upload of {entry.path}",
        complete,
        lambda: find_uploaded(client, caller, entry),
        look_first=False,
    )


def ensure_uploaded(
    client: openai.OpenAI,
    caller: Caller,
    journal: RunJournal,
    role: str,
    *,
    threshold: int = DEFAULT_UPLOAD_THRESHOLD,
    part_size: int = DEFAULT_PART_SIZE,
) -> str:
    """Make sure the run's ``role`` file is on the provider, uploading it at most once.

    Args:
        client: the SDK client.
        caller: the retry layer.
        journal: the run state (updated and saved as the upload goes).
        role: ``train`` or ``validation``.
        threshold: files larger than this go through the Uploads API in parts.
        part_size: the size of each part.

    Returns:
        The provider's file id.

    Raises:
        InvalidTrainingFileError: the provider rejected the file.
        ProviderError: the upload failed for good.
    """
    entry = journal.state.file(role)
    assert entry is not None, f"the run has no {role} file"
    context = ErrorContext(path=entry.path)
    if entry.file_id is not None:
        return entry.file_id
    found = find_uploaded(client, caller, entry)
    if found is not None:
        log.info("%s: reusing %s (%s), same content already uploaded", entry.path, found.id, role)
    elif entry.bytes <= threshold:
        found = _upload_small(client, caller, entry)
    else:
        try:
            found = _upload_parts(client, caller, journal, entry, part_size)
        except ProviderError as exc:
            if entry.upload_id is None or exc.status not in _STALE_UPLOAD:
                raise
            log.warning("upload %s cannot be resumed (%s); starting again", entry.upload_id, exc)
            entry = journal.update_file(role, upload_id=None, part_ids=())
            found = _upload_parts(client, caller, journal, entry, part_size)
    found = _checked(found, entry, context)
    journal.update_file(role, file_id=found.id, upload_id=None, part_ids=())
    log.info("%s file %s is %s (%d bytes)", role, entry.path, found.id, entry.bytes)
    return found.id
