"""A stateful fake of OpenAI's fine-tuning API on respx: files, uploads, jobs, events, models.

Every response body is built from the openai SDK's own pydantic types
(``FileObject``, ``Upload``, ``UploadPart``, ``FineTuningJob``,
``FineTuningJobEvent``, ``FineTuningJobCheckpoint``, ``Model``) and dumped,
so the shapes follow the installed SDK and cannot drift.  Errors use the
real status codes and the ``{"error": {"message", "type", "param", "code"}}``
body.

Time is a :class:`FakeClock` shared with the backend: a job moves through
the phases of its :class:`JobScript` as the backend "sleeps", so a
30-minute job runs in microseconds.  Faults are injected per route
(:meth:`FakeOpenAI.inject`), and :meth:`FakeOpenAI.crash_at` raises
:class:`SimulatedCrash` (a ``BaseException``, like a kill) at the n-th call,
before or after the server acted on it.

Use it through its transport::

    fake = FakeOpenAI(clock=FakeClock())
    backend = OpenAIBackend(..., base_url=fake.base_url, http_transport=fake.transport,
                            sleep=fake.clock.sleep, clock=fake.clock)
"""

from __future__ import annotations

import base64
import hashlib
import itertools
import json
from collections import Counter
from collections.abc import Callable, Mapping
from email import policy
from email.parser import BytesParser
from typing import Any

import attrs
import httpx
import respx
from openai.types import FileObject, Model, Upload
from openai.types.fine_tuning import FineTuningJob, FineTuningJobEvent
from openai.types.fine_tuning.jobs import FineTuningJobCheckpoint
from openai.types.uploads import UploadPart

BASE_URL = "https://api.fake-openai.test/v1"
BASE_MODELS = ("gpt-4o-mini-2024-07-18", "gpt-4.1-mini-2025-04-14", "gpt-4.1-2025-04-14")
_FINAL = frozenset(("succeeded", "failed", "cancelled"))


class SimulatedCrash(BaseException):
    """The process dies here: raised by the fake at a chosen call (not an ``Exception``)."""


@attrs.define
class FakeClock:
    """Simulated time: ``clock()`` reads it, ``clock.sleep(s)`` advances it (and records s)."""

    now: float = 1_760_000_000.0
    sleeps: list[float] = attrs.field(factory=list)

    def __call__(self) -> float:
        """Return the current simulated time."""
        return self.now

    def sleep(self, seconds: float) -> None:
        """Advance the simulated time instead of sleeping."""
        self.sleeps.append(seconds)
        self.now += seconds


def error_body(message: str, type: str, code: str | None = None, param: str | None = None) -> dict:
    """Return an OpenAI error body."""
    return {"error": {"message": message, "type": type, "param": param, "code": code}}


@attrs.frozen(kw_only=True)
class Fault:
    """One injected failure of one call.

    Attributes:
        status: the HTTP status answered (ignored when ``exception`` is set).
        body: the error body.
        headers: response headers (``retry-after``...).
        exception: builds the exception raised instead of answering (a timeout, a reset).
        after: the server acts on the request first, then the failure is returned.
    """

    status: int = 500
    body: Mapping[str, Any] = attrs.field(
        factory=lambda: error_body(
            "The server had an error processing your request.", "server_error"
        )
    )
    headers: Mapping[str, str] = attrs.field(factory=dict)
    exception: Callable[[httpx.Request], Exception] | None = None
    after: bool = False

    @classmethod
    def http(
        cls,
        status: int,
        code: str | None = None,
        *,
        type: str = "invalid_request_error",
        message: str = "injected error",
        param: str | None = None,
        headers: Mapping[str, str] | None = None,
        after: bool = False,
    ) -> Fault:
        """An HTTP error answer."""
        return cls(
            status=status,
            body=error_body(message, type, code, param),
            headers=dict(headers or {}),
            after=after,
        )

    @classmethod
    def timeout(cls, *, after: bool = False) -> Fault:
        """A read timeout (``after=True``: the server acted, the answer was lost)."""
        return cls(
            exception=lambda request: httpx.ReadTimeout("timed out", request=request), after=after
        )

    @classmethod
    def reset(cls, *, after: bool = False) -> Fault:
        """A connection reset by the peer."""
        return cls(
            exception=lambda request: httpx.RemoteProtocolError(
                "connection reset by peer", request=request
            ),
            after=after,
        )


@attrs.frozen(kw_only=True)
class JobScript:
    """How every job of the fake goes: phases (status, seconds), then an outcome.

    Attributes:
        phases: the statuses a job passes through and how long each lasts;
            ``running`` phases produce the metric events.
        outcome: ``succeeded`` or ``failed``.
        error: the job's error object when it fails.
        steps: training steps (one metric event each).
    """

    phases: tuple[tuple[str, float], ...] = (
        ("validating_files", 20.0),
        ("queued", 40.0),
        ("running", 1740.0),
    )
    outcome: str = "succeeded"
    error: Mapping[str, Any] | None = None
    steps: int = 30


def _dump(model: Any) -> dict[str, Any]:
    return model.model_dump(mode="json")


def _multipart(request: httpx.Request) -> dict[str, tuple[str | None, bytes]]:
    header = f"Content-Type: {request.headers['content-type']}\r\n\r\n".encode()
    message = BytesParser(policy=policy.HTTP).parsebytes(header + request.read())
    fields = {}
    for part in message.iter_parts():
        name = part.get_param("name", header="content-disposition")
        fields[str(name)] = (part.get_filename(), part.get_payload(decode=True) or b"")
    return fields


@attrs.define
class _Job:
    body: dict[str, Any]
    phases: list[list[Any]]
    script: JobScript
    running_total: float
    last: float
    running_done: float = 0.0
    steps_done: int = 0
    paused: bool = False
    ended_at: float | None = None
    events: list[dict[str, Any]] = attrs.field(factory=list)
    checkpoints: list[dict[str, Any]] = attrs.field(factory=list)


class FakeOpenAI:
    """The fake service.  See the module docstring.

    Attributes:
        calls: the route name of every call, in order.
        files: file id -> (FileObject dump, content bytes).
        jobs: job id -> job.
        auth: the credentials header of every call (to check the key is sent, never leaked).
    """

    def __init__(
        self,
        *,
        clock: FakeClock,
        base_url: str = BASE_URL,
        script: JobScript | None = None,
        training_available: bool = True,
    ) -> None:
        self.clock = clock
        self.base_url = base_url
        self.script = script or JobScript()
        self.training_available = training_available
        self.calls: list[str] = []
        self.auth: list[str] = []
        self.files: dict[str, tuple[dict[str, Any], bytes]] = {}
        self.uploads: dict[str, dict[str, Any]] = {}
        self.parts: dict[str, bytes] = {}
        self.jobs: dict[str, _Job] = {}
        self.models: dict[str, dict[str, Any]] = {}
        self._faults: dict[str, list[Fault]] = {}
        self._crash: tuple[int, bool] | None = None
        self._ids = itertools.count(1)
        self.router = respx.Router(base_url=base_url, assert_all_called=False)
        for name in BASE_MODELS:
            self.models[name] = _dump(
                Model(id=name, created=1_700_000_000, object="model", owned_by="system")
            )
        routes: list[tuple[str, str, str, Callable[..., httpx.Response]]] = [
            ("POST", r"/files$", "files.create", self._files_create),
            ("GET", r"/files$", "files.list", self._files_list),
            ("GET", r"/files/(?P<file_id>[^/]+)/content$", "files.content", self._files_content),
            ("GET", r"/files/(?P<file_id>[^/]+)$", "files.retrieve", self._files_retrieve),
            ("POST", r"/uploads$", "uploads.create", self._uploads_create),
            ("POST", r"/uploads/(?P<upload_id>[^/]+)/parts$", "uploads.parts", self._parts_create),
            (
                "POST",
                r"/uploads/(?P<upload_id>[^/]+)/complete$",
                "uploads.complete",
                self._uploads_complete,
            ),
            ("POST", r"/fine_tuning/jobs$", "jobs.create", self._jobs_create),
            ("GET", r"/fine_tuning/jobs$", "jobs.list", self._jobs_list),
            ("GET", r"/fine_tuning/jobs/(?P<job_id>[^/]+)/events$", "jobs.events", self._events),
            (
                "GET",
                r"/fine_tuning/jobs/(?P<job_id>[^/]+)/checkpoints$",
                "jobs.checkpoints",
                self._checkpoints,
            ),
            ("POST", r"/fine_tuning/jobs/(?P<job_id>[^/]+)/cancel$", "jobs.cancel", self._cancel),
            ("POST", r"/fine_tuning/jobs/(?P<job_id>[^/]+)/pause$", "jobs.pause", self._pause),
            ("POST", r"/fine_tuning/jobs/(?P<job_id>[^/]+)/resume$", "jobs.resume", self._resume),
            ("GET", r"/fine_tuning/jobs/(?P<job_id>[^/]+)$", "jobs.retrieve", self._retrieve),
            ("GET", r"/models$", "models.list", self._models_list),
            ("GET", r"/models/(?P<model>[^/]+)$", "models.retrieve", self._models_retrieve),
        ]
        for method, pattern, name, handler in routes:
            self.router.route(method=method, path__regex=pattern, name=name).mock(
                side_effect=self._dispatcher(name, handler)
            )

    # -- test controls --------------------------------------------------------------------

    @property
    def transport(self) -> httpx.MockTransport:
        """An httpx transport answering from this fake."""
        return httpx.MockTransport(self.router.handler)

    def inject(self, route: str, *faults: Fault) -> None:
        """Make the next calls of ``route`` (e.g. ``"jobs.create"``) fail, one fault each."""
        self._faults.setdefault(route, []).extend(faults)

    def crash_at(self, call: int | None, *, after: bool = False) -> None:
        """Raise :class:`SimulatedCrash` at the ``call``-th call from now (1-based); None: never."""
        self._crash = None if call is None else (len(self.calls) + call, after)

    def count(self, route: str) -> int:
        """How many calls of ``route`` were made (faulty ones included)."""
        return self.calls.count(route)

    @property
    def training_files(self) -> list[dict[str, Any]]:
        """The ``fine-tune`` files that exist (uploaded whole or through the Uploads API)."""
        return [obj for obj, _ in self.files.values() if obj["purpose"] == "fine-tune"]

    def files_by_content(self) -> Counter[str]:
        """How many ``fine-tune`` files hold each content (by SHA-256)."""
        return Counter(
            hashlib.sha256(data).hexdigest()
            for obj, data in self.files.values()
            if obj["purpose"] == "fine-tune"
        )

    # -- plumbing -------------------------------------------------------------------------

    def _new_id(self, prefix: str) -> str:
        return f"{prefix}-{next(self._ids):06d}"

    def _dispatcher(
        self, name: str, handler: Callable[..., httpx.Response]
    ) -> Callable[..., httpx.Response]:
        def dispatch(request: httpx.Request, **params: str) -> httpx.Response:
            self.calls.append(name)
            self.auth.append(
                request.headers.get("authorization") or request.headers.get("api-key", "")
            )
            crash_now = self._crash is not None and self._crash[0] == len(self.calls)
            if crash_now and self._crash is not None and not self._crash[1]:
                raise SimulatedCrash(f"killed before {name}")
            queue = self._faults.get(name)
            fault = queue.pop(0) if queue else None
            if fault is not None and not fault.after:
                return self._fail(fault, request)
            response = handler(request, **params)
            if crash_now:
                raise SimulatedCrash(f"killed after {name}")
            return self._fail(fault, request) if fault is not None else response

        return dispatch

    @staticmethod
    def _fail(fault: Fault, request: httpx.Request) -> httpx.Response:
        if fault.exception is not None:
            raise fault.exception(request)
        return httpx.Response(fault.status, json=dict(fault.body), headers=dict(fault.headers))

    @staticmethod
    def _page(items: list[dict[str, Any]], request: httpx.Request, default: int) -> httpx.Response:
        after = request.url.params.get("after")
        limit = int(request.url.params.get("limit", default))
        if after is not None:
            ids = [item["id"] for item in items]
            items = items[ids.index(after) + 1 :] if after in ids else []
        page = items[:limit]
        return httpx.Response(
            200, json={"object": "list", "data": page, "has_more": len(items) > limit}
        )

    @staticmethod
    def _not_found(what: str, ident: str, param: str) -> httpx.Response:
        body = error_body(f"No such {what}: '{ident}'", "invalid_request_error", None, param)
        return httpx.Response(404, json=body)

    # -- files ----------------------------------------------------------------------------

    def _add_file(self, name: str, data: bytes, purpose: str) -> dict[str, Any]:
        obj = _dump(
            FileObject(
                id=self._new_id("file"),
                bytes=len(data),
                created_at=int(self.clock.now),
                filename=name,
                object="file",
                purpose=purpose,  # type: ignore[arg-type]  # a literal checked by the SDK type
                status="processed",
            )
        )
        self.files[obj["id"]] = (obj, data)
        return obj

    def _files_create(self, request: httpx.Request) -> httpx.Response:
        form = _multipart(request)
        name, data = form["file"]
        purpose = form["purpose"][1].decode()
        return httpx.Response(200, json=self._add_file(name or "upload", data, purpose))

    def _files_list(self, request: httpx.Request) -> httpx.Response:
        purpose = request.url.params.get("purpose")
        items = [obj for obj, _ in self.files.values() if purpose in (None, obj["purpose"])]
        items.sort(key=lambda obj: (obj["created_at"], obj["id"]), reverse=True)
        return self._page(items, request, 10_000)

    def _files_retrieve(self, request: httpx.Request, file_id: str) -> httpx.Response:
        if file_id not in self.files:
            return self._not_found("file", file_id, "file_id")
        return httpx.Response(200, json=self.files[file_id][0])

    def _files_content(self, request: httpx.Request, file_id: str) -> httpx.Response:
        if file_id not in self.files:
            return self._not_found("file", file_id, "file_id")
        return httpx.Response(200, content=self.files[file_id][1])

    # -- uploads --------------------------------------------------------------------------

    def _uploads_create(self, request: httpx.Request) -> httpx.Response:
        body = json.loads(request.read())
        obj = _dump(
            Upload(
                id=self._new_id("upload"),
                bytes=body["bytes"],
                created_at=int(self.clock.now),
                expires_at=int(self.clock.now) + 3600,
                filename=body["filename"],
                object="upload",
                purpose=body["purpose"],
                status="pending",
            )
        )
        self.uploads[obj["id"]] = obj
        return httpx.Response(200, json=obj)

    def _parts_create(self, request: httpx.Request, upload_id: str) -> httpx.Response:
        upload = self.uploads.get(upload_id)
        if upload is None:
            return self._not_found("upload", upload_id, "upload_id")
        if upload["status"] != "pending" or self.clock.now > upload["expires_at"]:
            body = error_body(f"Upload {upload_id} is {upload['status']}", "invalid_request_error")
            return httpx.Response(400, json=body)
        part = _dump(
            UploadPart(
                id=self._new_id("part"),
                created_at=int(self.clock.now),
                object="upload.part",
                upload_id=upload_id,
            )
        )
        self.parts[part["id"]] = _multipart(request)["data"][1]
        return httpx.Response(200, json=part)

    def _uploads_complete(self, request: httpx.Request, upload_id: str) -> httpx.Response:
        upload = self.uploads.get(upload_id)
        if upload is None:
            return self._not_found("upload", upload_id, "upload_id")
        body = json.loads(request.read())
        data = b"".join(self.parts[part] for part in body["part_ids"])
        if upload["status"] != "pending" or len(data) != upload["bytes"]:
            message = (
                f"Upload {upload_id}: {len(data)} bytes of {upload['bytes']}, {upload['status']}"
            )
            return httpx.Response(400, json=error_body(message, "invalid_request_error"))
        if body.get("md5") and body["md5"] != hashlib.md5(data).hexdigest():
            return httpx.Response(400, json=error_body("md5 mismatch", "invalid_request_error"))
        upload["status"] = "completed"
        upload["file"] = self._add_file(upload["filename"], data, upload["purpose"])
        return httpx.Response(200, json=_dump(Upload.model_validate(upload)))

    # -- jobs -----------------------------------------------------------------------------

    def _job_json(self, job: _Job) -> dict[str, Any]:
        status = job.body["status"]
        shown = dict(job.body, status=status if status in _FINAL else "running")
        checked = _dump(
            FineTuningJob.model_validate(shown)
        )  # the SDK's shape, unknown statuses too
        checked["status"] = status
        return checked

    def _event(self, job: _Job, message: str, data: dict[str, Any] | None = None) -> None:
        kind = "metrics" if data is not None else "message"
        event = FineTuningJobEvent(
            id=self._new_id("ftevent"),
            created_at=int(self.clock.now),
            level="info",
            message=message,
            object="fine_tuning.job.event",
            data=data or {},
            type=kind,
        )
        job.events.append(_dump(event))

    def _set_status(self, job: _Job, status: str) -> None:
        if job.body["status"] != status:
            job.body["status"] = status
            self._event(job, f"Job status is now {status}")

    def _advance(self, job: _Job) -> None:
        now = self.clock.now
        at, job.last = job.last, now
        if job.paused or job.body["status"] in _FINAL:
            return
        while job.phases and at < now:
            status, left = job.phases[0]
            used = min(now - at, left)
            if status == "running":
                job.running_done += used
                self._emit_steps(job)
            job.phases[0][1] -= used
            at += used
            if job.phases[0][1] <= 0:
                job.phases.pop(0)
                if job.phases:
                    self._set_status(job, job.phases[0][0])
        if not job.phases:
            job.ended_at = at
            self._end(job)

    def _emit_steps(self, job: _Job) -> None:
        steps = job.script.steps
        reached = int(steps * min(1.0, job.running_done / job.running_total))
        while job.steps_done < reached:
            job.steps_done += 1
            step = job.steps_done
            loss = round(2.0 / step, 5)
            data = {
                "step": step,
                "train_loss": loss,
                "train_mean_token_accuracy": round(1 - loss / 4, 5),
                "total_steps": steps,
            }
            if step % 10 == 0:
                data["valid_loss"] = round(loss * 1.1, 5)
            self._event(job, f"Step {step}/{steps}: training loss={loss:.2f}", data)

    def _end(self, job: _Job) -> None:
        if job.script.outcome == "failed":
            job.body["error"] = dict(job.script.error or {"code": "unknown", "message": "failed"})
            job.body["finished_at"] = int(job.ended_at or self.clock.now)
            self._set_status(job, "failed")
            return
        body = job.body
        suffix = body.get("suffix") or ""
        model = f"ft:{body['model']}:fake-org:{suffix}:{body['id'][-6:]}"
        rows = ["step,train_loss,train_accuracy,valid_loss,valid_mean_token_accuracy"]
        rows += [f"{s},{2.0 / s:.5f},{1 - 0.5 / s:.5f},," for s in range(1, job.script.steps + 1)]
        csv = base64.b64encode(("\n".join(rows) + "\n").encode())
        result = self._add_file(f"step_metrics_{body['id']}.csv", csv, "fine-tune-results")
        train = self.files[body["training_file"]][1]
        body.update(
            fine_tuned_model=model,
            finished_at=int(job.ended_at or self.clock.now),
            trained_tokens=len(train) * 3 // 4,
            result_files=[result["id"]],
        )
        for step in sorted({max(1, job.script.steps // 3), job.script.steps}):
            checkpoint = FineTuningJobCheckpoint.model_validate(
                {
                    "id": self._new_id("ftckpt"),
                    "created_at": int(self.clock.now),
                    "fine_tuned_model_checkpoint": f"{model}:ckpt-step-{step}",
                    "fine_tuning_job_id": body["id"],
                    "metrics": {"step": step, "train_loss": 2.0 / step},
                    "object": "fine_tuning.job.checkpoint",
                    "step_number": step,
                }
            )
            job.checkpoints.append(_dump(checkpoint))
        self.models[model] = _dump(
            Model(id=model, created=int(self.clock.now), object="model", owned_by="fake-org")
        )
        self._event(job, "New fine-tuned model created")
        self._set_status(job, "succeeded")

    def _job(self, job_id: str) -> _Job | None:
        job = self.jobs.get(job_id)
        if job is not None:
            self._advance(job)
        return job

    def _jobs_create(self, request: httpx.Request) -> httpx.Response:
        if not self.training_available:
            message = "Fine-tuning is not available for your organization."
            body = error_body(message, "invalid_request_error", "training_not_available")
            return httpx.Response(403, json=body)
        body = json.loads(request.read())
        for param in ("training_file", "validation_file"):
            file_id = body.get(param)
            if file_id is not None and file_id not in self.files:
                message = f"Invalid file ID: {file_id}"
                error = error_body(message, "invalid_request_error", "invalid_file_id", param)
                return httpx.Response(400, json=error)
        if body["model"] not in self.models:
            message = f"Model {body['model']} is not available for fine-tuning or does not exist."
            error = error_body(message, "invalid_request_error", "model_not_available", "model")
            return httpx.Response(400, json=error)
        if len(body.get("metadata") or {}) > 16 or len(body.get("suffix") or "") > 64:
            error = error_body("Invalid suffix or metadata", "invalid_request_error")
            return httpx.Response(400, json=error)
        method = body.get("method") or {"type": "supervised"}
        kind = method["type"]
        hyper = {"n_epochs": 3, "batch_size": 1, "learning_rate_multiplier": 1.8}
        hyper.update((method.get(kind) or {}).get("hyperparameters", {}))
        job_body = {
            "id": self._new_id("ftjob"),
            "created_at": int(self.clock.now),
            "error": None,
            "fine_tuned_model": None,
            "finished_at": None,
            "hyperparameters": {k: v for k, v in hyper.items() if k != "beta"},
            "model": body["model"],
            "object": "fine_tuning.job",
            "organization_id": "org-fake",
            "result_files": [],
            "seed": body.get("seed", 42),
            "status": self.script.phases[0][0] if self.script.phases else "queued",
            "trained_tokens": None,
            "training_file": body["training_file"],
            "validation_file": body.get("validation_file"),
            "metadata": body.get("metadata"),
            "suffix": body.get("suffix"),
            "method": {"type": kind, kind: {"hyperparameters": hyper}},
        }
        running = sum(seconds for status, seconds in self.script.phases if status == "running")
        job = _Job(
            body=job_body,
            phases=[[status, seconds] for status, seconds in self.script.phases],
            script=self.script,
            running_total=running or 1.0,
            last=self.clock.now,
        )
        self.jobs[job_body["id"]] = job
        self._event(job, f"Created fine-tuning job: {job_body['id']}")
        return httpx.Response(200, json=self._job_json(job))

    def _jobs_list(self, request: httpx.Request) -> httpx.Response:
        wanted = {
            key[len("metadata[") : -1]: value
            for key, value in request.url.params.multi_items()
            if key.startswith("metadata[")
        }
        items = []
        for job in reversed(list(self.jobs.values())):
            self._advance(job)
            metadata = job.body.get("metadata") or {}
            if all(metadata.get(key) == value for key, value in wanted.items()):
                items.append(self._job_json(job))
        return self._page(items, request, 20)

    def _retrieve(self, request: httpx.Request, job_id: str) -> httpx.Response:
        job = self._job(job_id)
        if job is None:
            return self._not_found("fine-tuning job", job_id, "fine_tuning_job_id")
        return httpx.Response(200, json=self._job_json(job))

    def _events(self, request: httpx.Request, job_id: str) -> httpx.Response:
        job = self._job(job_id)
        if job is None:
            return self._not_found("fine-tuning job", job_id, "fine_tuning_job_id")
        return self._page(job.events[::-1], request, 20)

    def _checkpoints(self, request: httpx.Request, job_id: str) -> httpx.Response:
        job = self._job(job_id)
        if job is None:
            return self._not_found("fine-tuning job", job_id, "fine_tuning_job_id")
        return self._page(job.checkpoints[::-1], request, 10)

    def _control(self, job_id: str, act: Callable[[_Job], str | None]) -> httpx.Response:
        job = self._job(job_id)
        if job is None:
            return self._not_found("fine-tuning job", job_id, "fine_tuning_job_id")
        problem = act(job)
        if problem is not None:
            return httpx.Response(400, json=error_body(problem, "invalid_request_error"))
        return httpx.Response(200, json=self._job_json(job))

    def _cancel(self, request: httpx.Request, job_id: str) -> httpx.Response:
        def act(job: _Job) -> str | None:
            if job.body["status"] in _FINAL:
                return f"Job {job_id} has already {job.body['status']}"
            job.phases.clear()
            job.body["finished_at"] = int(self.clock.now)
            self._set_status(job, "cancelled")
            return None

        return self._control(job_id, act)

    def _pause(self, request: httpx.Request, job_id: str) -> httpx.Response:
        def act(job: _Job) -> str | None:
            if job.body["status"] in _FINAL:
                return f"Job {job_id} has already {job.body['status']}"
            job.paused = True
            self._set_status(job, "paused")
            return None

        return self._control(job_id, act)

    def _resume(self, request: httpx.Request, job_id: str) -> httpx.Response:
        def act(job: _Job) -> str | None:
            if not job.paused:
                return f"Job {job_id} is not paused"
            job.paused = False
            self._set_status(job, job.phases[0][0] if job.phases else "running")
            return None

        return self._control(job_id, act)

    # -- models ---------------------------------------------------------------------------

    def _models_list(self, request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, json={"object": "list", "data": list(self.models.values())})

    def _models_retrieve(self, request: httpx.Request, model: str) -> httpx.Response:
        if model not in self.models:
            body = error_body(
                f"The model '{model}' does not exist", "invalid_request_error", "model_not_found"
            )
            return httpx.Response(404, json=body)
        return httpx.Response(200, json=self.models[model])
