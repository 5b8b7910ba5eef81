"""Video transcripts: WebVTT, SRT and SBV caption files read as passages of text.

:func:`parse_transcript` reads one caption file into :class:`Cue` records.
:class:`TranscriptSource` reads one file, a folder of them or a list, and
yields one :class:`~finetune_web.records.Document` per passage: cues merged
by a time window and at sentence ends, YouTube's rolling captions collapsed
so that no words repeat.  Cues that cannot be read become rejections naming
the file and line.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any

import attrs

from finetune_web._io import check_file, detect_encoding, iter_text_lines
from finetune_web.errors import (
    ConfigError,
    DecodeError,
    ErrorContext,
    SourceError,
    error_context,
)
from finetune_web.records import Document, Location, Record, Rejection
from finetune_web.sources._caption_passages import collapse_rolling, merge_cues
from finetune_web.sources._captions import (
    FORMATS,
    SUFFIX_FORMATS,
    Cue,
    Format,
    read_cues,
    sniff_format,
)
from finetune_web.sources.files import check_encoding

__all__ = ["DEFAULT_CAPTION_SUFFIXES", "Cue", "TranscriptSource", "parse_transcript"]

#: The file name suffixes a folder is searched for.
DEFAULT_CAPTION_SUFFIXES = (".vtt", ".srt", ".sbv")


def _check_format(_: object, attribute: attrs.Attribute[Any], value: str | None) -> None:
    if value is not None and value not in FORMATS:
        raise ConfigError(
            f"{attribute.name}={value!r} is not a caption format; use one of {list(FORMATS)} "
            "or None to tell from the file name and content"
        )


def _check_seconds(_: object, attribute: attrs.Attribute[Any], value: float | None) -> None:
    if value is not None and not value > 0:
        raise ConfigError(f"{attribute.name} must be a number of seconds above 0, not {value!r}")


def _paths(value: str | os.PathLike[str] | Iterable[str | os.PathLike[str]]) -> tuple[Path, ...]:
    if isinstance(value, str | os.PathLike):
        return (Path(value),)
    paths = tuple(Path(item) for item in value)
    if not paths:
        raise ConfigError("paths is empty; name a caption file, a folder, or a list of them")
    return paths


def _suffixes(value: Iterable[str]) -> tuple[str, ...]:
    items = (value,) if isinstance(value, str) else tuple(value)
    return tuple(s.lower() if s.startswith(".") else f".{s.lower()}" for s in items)


def _file_format(path: Path, encoding: str, given: Format | None) -> Format:
    """Return the format to read ``path`` with: the one given, its suffix's, or a sniffed one.

    Raises:
        SourceError: none of these tells the format.
    """
    fmt = given or SUFFIX_FORMATS.get(path.suffix.lower()) or sniff_format(path, encoding)
    if fmt is None:
        raise SourceError(
            "cannot tell the caption format: the name does not end in .vtt, .srt or .sbv and no "
            "WEBVTT header or timing line was found near the start; pass format='vtt', 'srt' "
            "or 'sbv'",
            ErrorContext(path=str(path)),
        )
    return fmt


def _empty_error(path: Path, step: str) -> SourceError:
    return SourceError(
        "file holds no caption text (it is empty, or has no cue with text); check that it "
        "was written fully",
        ErrorContext(path=str(path), source=step),
    )


def parse_transcript(
    path: str | os.PathLike[str],
    *,
    format: Format | None = None,
    encoding: str | None = None,
    collapse: bool = False,
) -> Iterator[Cue | Rejection]:
    """Read the cues of one WebVTT, SRT or SBV file.

    Args:
        path: the caption file.
        format: ``"vtt"``, ``"srt"`` or ``"sbv"``; by default told from the
            suffix (``.vtt``, ``.webvtt``, ``.srt``, ``.sbv``), else from the
            first lines.
        encoding: the file's encoding; detected when ``None`` (a byte-order
            mark wins, then UTF-8, then the best legacy guess such as cp1252
            or cp932 for Shift-JIS).
        collapse: once the file shows YouTube-style rolling captions, cut the
            lines or words of each cue that repeat the previous cue; cues that
            only repeat come back with empty text.

    Returns:
        An iterator of :class:`Cue` records and, for cues that cannot be read,
        :class:`~finetune_web.records.Rejection` records (reasons
        ``bad_timestamp``, ``invalid_encoding``, ``record_too_large``,
        ``orphan_text``), in file order.

    Raises:
        ConfigError: ``format`` is not one of the three.
        SourceError: the file is missing or empty (raised here), or holds no
            cue at all (raised when the iterator ends); its format cannot be told.
        DecodeError: no encoding fits the file.
    """
    if format is not None:
        _check_format(None, attrs.fields(TranscriptSource).format, format)
    path = check_file(Path(path))
    if path.stat().st_size == 0:
        raise _empty_error(path, "parse_transcript")
    chosen = encoding or detect_encoding(path)
    fmt = _file_format(path, chosen, format)
    return _parse(path, path.name, chosen, fmt, "parse_transcript", collapse=collapse)


def _parse(
    path: Path, name: str, encoding: str, fmt: Format, step: str, *, collapse: bool
) -> Iterator[Cue | Rejection]:
    lines = iter_text_lines(path, encoding=encoding)
    items = read_cues(lines, fmt=fmt, origin=str(path), name=name, step=step)
    count = 0
    for item in collapse_rolling(items) if collapse else items:
        count += 1
        yield item
    if not count:
        raise _empty_error(path, step)


@attrs.frozen
class TranscriptSource:
    """Reads caption files (WebVTT, SRT, SBV) as passages of spoken text.

    Each passage becomes a :class:`~finetune_web.records.Document` with id
    ``"<file>#<passage, 5 digits>"`` (the file named relative to the folder
    or list given), ``text`` the passage's words, and ``metadata``
    ``{"source", "format", "start", "end", "cues", "passage"}`` (times in
    seconds).

    Rejections: ``bad_timestamp`` (a cue's timing line is malformed, or the
    cue ends before it starts), ``invalid_encoding`` and
    ``record_too_large`` (a line cannot be read), ``orphan_text`` (text
    outside any cue), each naming the file and line.  Among several files, a
    file that cannot be read as a whole becomes one rejection
    (``empty_file``, ``unknown_format``, ``invalid_encoding``); a source
    given one file raises :class:`~finetune_web.errors.SourceError` instead,
    as the other file sources do.

    Args:
        paths: a caption file, a folder (searched recursively for ``suffixes``,
            in sorted order), or a list of files and folders; a file named
            twice is read once.
        format: ``"vtt"``, ``"srt"`` or ``"sbv"`` for every file; by default
            each file's suffix, else its first lines, tell.
        encoding: the files' encoding; detected per file when ``None``.
        max_seconds: the longest passage in seconds (first cue's start to
            last cue's end); ``None`` for no limit.
        sentence_ends: end passages at sentence ends: the last one before
            ``max_seconds`` is reached, or every one when ``max_seconds`` is
            ``None``.
        per_cue: yield one document per cue instead of merging cues.
        collapse: collapse rolling captions (cut words repeating the
            previous cue; cues that only repeat add nothing).
        suffixes: the file name suffixes searched for in folders.
        name: the name rejections carry as ``step`` (default: the class name).
    """

    paths: tuple[Path, ...] = attrs.field(converter=_paths)
    format: Format | None = attrs.field(default=None, kw_only=True, validator=_check_format)
    encoding: str | None = attrs.field(default=None, kw_only=True, validator=check_encoding)
    max_seconds: float | None = attrs.field(default=30.0, kw_only=True, validator=_check_seconds)
    sentence_ends: bool = attrs.field(default=True, kw_only=True)
    per_cue: bool = attrs.field(default=False, kw_only=True)
    collapse: bool = attrs.field(default=True, kw_only=True)
    suffixes: tuple[str, ...] = attrs.field(
        default=DEFAULT_CAPTION_SUFFIXES, kw_only=True, converter=_suffixes
    )
    name: str | None = attrs.field(default=None, kw_only=True)

    def input_files(self) -> Sequence[Path]:
        """Return the files this source reads, in reading order.

        Raises:
            SourceError: a path does not exist, or a folder holds no caption file.
        """
        return tuple(path for path, _ in self._files())

    def read(self) -> Iterator[Record | Rejection]:
        """Return an iterator over the passages and rejections of every file, in order.

        Raises:
            SourceError: a path does not exist, a folder holds no caption file,
                or the one file given is empty (raised here); the one file given
                holds no cue text or cannot be decoded (raised when reached).
        """
        files = self._files()
        single = len(self.paths) == 1 and not self.paths[0].is_dir()
        if single and files[0][0].stat().st_size == 0:
            raise _empty_error(files[0][0], self._step())
        return self._read(files, single)

    def _step(self) -> str:
        return self.name or type(self).__name__

    def _files(self) -> list[tuple[Path, str]]:
        """Return each file to read with its name in ids, relative to the common folder."""
        found: list[Path] = []
        roots: list[Path] = []
        for path in self.paths:
            if path.is_dir():
                matches = sorted(
                    p for p in path.rglob("*") if p.is_file() and p.suffix.lower() in self.suffixes
                )
                if not matches:
                    raise SourceError(
                        f"no caption files ({', '.join(self.suffixes)}) in this folder; check "
                        "the path, or set suffixes=... to the names your files end in",
                        ErrorContext(path=str(path), source=self._step()),
                    )
                found.extend(matches)
                roots.append(path)
            else:
                found.append(check_file(path))
                roots.append(path.parent)
        first: dict[Path, Path] = {}
        for path in found:
            first.setdefault(path.absolute(), path)
        unique = list(first.values())
        try:
            root = Path(os.path.commonpath([str(r.absolute()) for r in roots]))
        except ValueError:  # paths on different drives
            return [(path, path.name) for path in unique]
        return [(p, p.absolute().relative_to(root).as_posix()) for p in unique]

    def _read(self, files: list[tuple[Path, str]], single: bool) -> Iterator[Record | Rejection]:
        for path, name in files:
            yield from self._read_file(path, name, single)

    def _read_file(self, path: Path, name: str, single: bool) -> Iterator[Record | Rejection]:
        step = self._step()
        try:
            with error_context(path=str(path), source=step):
                encoding = self.encoding or detect_encoding(path)
                fmt = _file_format(path, encoding, self.format)
        except SourceError as exc:
            if single:
                raise
            reason = "invalid_encoding" if isinstance(exc, DecodeError) else "unknown_format"
            yield self._file_rejection(path, name, reason, exc)
            return
        items = _parse(path, name, encoding, fmt, step, collapse=self.collapse)
        passages = rejections = 0
        try:
            for group in self._groups(items):
                if isinstance(group, Rejection):
                    rejections += 1
                    yield group
                else:
                    yield _passage(group, path, name, fmt, passages)
                    passages += 1
        except DecodeError as exc:  # UTF-16/32 data that cannot be split into lines any more
            yield self._file_rejection(path, name, "invalid_encoding", exc)
            return
        except SourceError as exc:  # no cue at all
            if single:
                raise
            yield self._file_rejection(path, name, "empty_file", exc)
            return
        if not passages and not rejections:
            if single:
                raise _empty_error(path, step)
            yield self._file_rejection(path, name, "empty_file", _empty_error(path, step))

    def _groups(self, items: Iterable[Cue | Rejection]) -> Iterator[tuple[Cue, ...] | Rejection]:
        if not self.per_cue:
            return merge_cues(items, max_seconds=self.max_seconds, sentence_ends=self.sentence_ends)
        return (
            item if isinstance(item, Rejection) else (item,)
            for item in items
            if isinstance(item, Rejection) or item.text
        )

    def _file_rejection(self, path: Path, name: str, reason: str, exc: SourceError) -> Rejection:
        where = str(path) if exc.context.line is None else f"{path}:{exc.context.line}"
        return Rejection(
            record_id=name,
            step=self._step(),
            reason=reason,
            message=f"{where}: {exc.message}",
            location=Location(origin=str(path), line=exc.context.line),
        )


def _passage(group: tuple[Cue, ...], path: Path, name: str, fmt: Format, number: int) -> Document:
    text = " ".join(" ".join(cue.text.split()) for cue in group)
    return Document(
        id=f"{name}#{number:05d}",
        text=text,
        metadata={
            "source": name,
            "format": fmt,
            "start": min(cue.start for cue in group),
            "end": max(cue.end for cue in group),
            "cues": len(group),
            "passage": number,
        },
        location=Location(origin=str(path), line=group[0].line, index=number),
    )
