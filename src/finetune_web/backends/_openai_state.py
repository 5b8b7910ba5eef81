"""The persisted state of one OpenAI fine-tuning run, so that a killed run resumes.

The state is one JSON file, ``openai_state.json``, beside the run's outputs.
It is written atomically (temporary file, fsync, rename) *before* every API
call whose effect must not be repeated: a process killed at any point and
started again reads it and goes on with the same files and the same job.  It
holds ids and hashes only, never the API key.
"""

from __future__ import annotations

import hashlib
import json
import os
import uuid
from pathlib import Path
from typing import Any

import attrs

from finetune_web.backends._openai_errors import RunStateError
from finetune_web.errors import ErrorContext

__all__ = [
    "STATE_FILE",
    "FileState",
    "RunJournal",
    "RunState",
    "StateStore",
    "fingerprint",
    "load_state",
]

#: The name of the state file inside a run directory.
STATE_FILE = "openai_state.json"
_VERSION = 1


def _strings(value: Any) -> tuple[str, ...]:
    return tuple(str(item) for item in value)


def _files(value: Any) -> tuple[FileState, ...]:
    return tuple(value)


@attrs.frozen(kw_only=True)
class FileState:
    """One training or validation file of a run.

    Attributes:
        role: ``train`` or ``validation``.
        path: the local file uploaded.
        sha256: hex digest of its bytes.
        bytes: its size.
        file_id: the provider's file id, once uploaded.
        upload_id: the multipart upload in progress (Uploads API), if any.
        part_ids: the parts of that upload added so far, in order.
    """

    role: str
    path: str
    sha256: str
    bytes: int
    file_id: str | None = None
    upload_id: str | None = None
    part_ids: tuple[str, ...] = attrs.field(default=(), converter=_strings)

    @property
    def filename(self) -> str:
        """The name the file is uploaded under: ``ftw-<sha256[:16]>-<role>.jsonl``."""
        return f"ftw-{self.sha256[:16]}-{self.role}.jsonl"

    @property
    def name_prefix(self) -> str:
        """The part of :attr:`filename` that identifies the content: ``ftw-<sha256[:16]>-``."""
        return f"ftw-{self.sha256[:16]}-"


@attrs.frozen(kw_only=True)
class RunState:
    """What a run has done so far.

    Attributes:
        run_id: a random id, sent as job metadata ``finetune_web_run``.
        model: the base model.
        method: ``supervised`` or ``dpo``.
        endpoint: where the job lives (base URL or Azure endpoint).
        api_version: the Azure API version, for an Azure run.
        fingerprint: hash of everything that defines the job (see :func:`fingerprint`).
        files: the run's files, train first.
        create_attempts: how many times ``jobs.create`` was sent.
        job_id: the job, once known.
        status: the job's status when the state was last saved (final once it ended).
        fine_tuned_model: the resulting model, once the job succeeded.
    """

    run_id: str
    model: str
    method: str
    endpoint: str
    fingerprint: str
    api_version: str | None = None
    files: tuple[FileState, ...] = attrs.field(default=(), converter=_files)
    create_attempts: int = 0
    job_id: str | None = None
    status: str | None = None
    fine_tuned_model: str | None = None

    @classmethod
    def new(
        cls,
        *,
        model: str,
        method: str,
        endpoint: str,
        fingerprint: str,
        api_version: str | None = None,
    ) -> RunState:
        """Return the state of a run that has done nothing yet, with a fresh run id."""
        return cls(
            run_id=f"ftw-{uuid.uuid4().hex[:20]}",
            model=model,
            method=method,
            endpoint=endpoint,
            fingerprint=fingerprint,
            api_version=api_version,
        )

    def file(self, role: str) -> FileState | None:
        """Return the file of ``role``, if the run has one."""
        return next((entry for entry in self.files if entry.role == role), None)

    def with_file(self, entry: FileState) -> RunState:
        """Return a state where ``entry`` replaces the file of its role (or is added)."""
        others = tuple(item for item in self.files if item.role != entry.role)
        ordered = sorted((*others, entry), key=lambda item: item.role != "train")
        return attrs.evolve(self, files=tuple(ordered))

    def to_json(self) -> dict[str, Any]:
        """Return the JSON form written to the state file."""
        body = attrs.asdict(self, recurse=True)
        body["files"] = [attrs.asdict(entry) for entry in self.files]
        for entry in body["files"]:
            entry["part_ids"] = list(entry["part_ids"])
        return {"version": _VERSION, **body}

    @classmethod
    def from_json(cls, obj: Any, *, path: str) -> RunState:
        """Read the JSON form back.

        Raises:
            RunStateError: the object is not a state this version can read.
        """
        try:
            if not isinstance(obj, dict) or obj.get("version") != _VERSION:
                raise TypeError(f"expected a version {_VERSION} state object")
            body = {key: value for key, value in obj.items() if key != "version"}
            body["files"] = tuple(FileState(**entry) for entry in body.get("files", ()))
            return cls(**body)
        except (TypeError, ValueError) as exc:
            raise RunStateError(
                f"cannot read the run state ({exc}); move the file away to start a new run",
                ErrorContext(path=path),
            ) from exc


@attrs.frozen
class StateStore:
    """Reads and atomically writes a run directory's state file.

    Attributes:
        run_dir: the run directory (created on the first save).
    """

    run_dir: Path = attrs.field(converter=Path)

    @property
    def path(self) -> Path:
        """The state file."""
        return self.run_dir / STATE_FILE

    def load(self) -> RunState | None:
        """Return the saved state, or ``None`` when the run has none yet.

        Raises:
            RunStateError: the file exists but cannot be read.
        """
        try:
            text = self.path.read_text(encoding="utf-8")
        except FileNotFoundError:
            return None
        try:
            obj = json.loads(text)
        except json.JSONDecodeError as exc:
            raise RunStateError(
                f"the run state is not JSON ({exc.msg}); move the file away to start a new run",
                ErrorContext(path=str(self.path)),
            ) from exc
        return RunState.from_json(obj, path=str(self.path))

    def save(self, state: RunState) -> None:
        """Write ``state`` atomically: a reader sees the old or the new file, never a mix."""
        self.run_dir.mkdir(parents=True, exist_ok=True)
        temporary = self.path.with_name(f".{STATE_FILE}.{os.getpid()}.{uuid.uuid4().hex}.tmp")
        data = json.dumps(state.to_json(), indent=2, sort_keys=True) + "\n"
        try:
            with temporary.open("w", encoding="utf-8") as handle:
                handle.write(data)
                handle.flush()
                os.fsync(handle.fileno())
            os.replace(temporary, self.path)
        except BaseException:
            temporary.unlink(missing_ok=True)
            raise


@attrs.define
class RunJournal:
    """The state of the run in progress: every change is saved before it is used.

    Attributes:
        store: where the state is saved.
        state: the current state.
    """

    store: StateStore
    state: RunState

    def update(self, **changes: Any) -> RunState:
        """Change fields of the state, save it, and return it."""
        self.state = attrs.evolve(self.state, **changes)
        self.store.save(self.state)
        return self.state

    def update_file(self, role: str, **changes: Any) -> FileState:
        """Change fields of the file of ``role``, save the state, and return the file.

        Raises:
            RunStateError: the run has no file of that role.
        """
        entry = self.state.file(role)
        if entry is None:
            raise RunStateError(
                f"the run has no {role} file", ErrorContext(path=str(self.store.path))
            )
        entry = attrs.evolve(entry, **changes)
        self.state = self.state.with_file(entry)
        self.store.save(self.state)
        return entry


def fingerprint(request: dict[str, Any]) -> str:
    """Return the SHA-256 of a job request's canonical JSON (keys sorted)."""
    text = json.dumps(request, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def load_state(store: StateStore) -> RunState:
    """Return a run directory's saved state.

    Raises:
        RunStateError: there is none (or it cannot be read).
    """
    state = store.load()
    if state is None:
        raise RunStateError(
            "no OpenAI run here: the directory has no run state", ErrorContext(path=str(store.path))
        )
    return state
