"""`textclf serve RUN`: an HTTP JSON API on a loaded run (FastAPI on uvicorn).

Routes:
- `POST /v1/models/NAME:predict` with `{"instances": ["text", ...]}` (TF Serving's REST
  predict shape; an instance may also be `{"text": "..."}`) -> `{"predictions": [...]}`;
- `POST /predict` with `{"texts": [...]}` or `{"text": "..."}` -> `{"predictions": [...]}`;
- `GET /health` -> `{"status": "ok", "model": ..., "labels": [...]}`.

Each prediction is `{"label", "probability", "probabilities": {label: p}}` (a multi-label run:
`{"labels": [every label at or above its threshold], "probabilities"}`). Requests that
arrive together are batched: a single worker takes whatever is queued (up to `max_batch`
texts, waiting at most `max_wait_ms` for more) and runs the model once for all of them, in a
thread, so the event loop keeps accepting. Bad requests (not JSON, wrong shape, empty text,
too many texts) get a 4xx JSON `{"error": "..."}`; the server keeps serving. uvicorn stops
cleanly on SIGTERM / Ctrl-C (in-flight requests finish).

Why FastAPI + uvicorn: an ASGI stack (async request handling, so concurrent requests can be
batched), well kept and widely deployed; FastAPI adds the JSON routing and error handlers,
uvicorn the HTTP server with graceful shutdown.
"""

# No `from __future__ import annotations`: FastAPI reads the handlers' annotations (Request) as objects.

import asyncio
from pathlib import Path
from typing import Any

from textclf import task

MAX_TEXTS_PER_REQUEST = 1024
MAX_TEXT_CHARS = 100_000
# A request body is read up to this size and refused beyond it (a declared larger one before it is read): the
# server's memory is bounded by what it answers, not by what a client sends.
MAX_BODY_BYTES = 64 << 20


class BadRequest(Exception):
    def __init__(self, message: str, status: int = 400) -> None:
        super().__init__(message)
        self.status = status


def _texts_from(body: Any, key: str) -> list[str]:
    """The texts of a request body, validated (BadRequest says what is wrong)."""
    from textclf.textfiles import json_kind
    from textclf.textrules import nul_as_space

    if not isinstance(body, dict):
        raise BadRequest("the request body must be a JSON object")
    if key == "instances":
        if "instances" not in body:
            raise BadRequest('expected {"instances": ["text", ...]}')
        items = body["instances"]
    elif "texts" in body and "text" in body:
        raise BadRequest('give "texts" (a list) or "text" (one), not both')
    elif "texts" in body:
        items = body["texts"]
    elif "text" in body:
        items = [body["text"]]
    else:
        raise BadRequest('expected {"texts": ["text", ...]} or {"text": "..."}')
    if not isinstance(items, list) or not items:
        raise BadRequest(f"{key if key == 'instances' else 'texts'} must be a non-empty list")
    if len(items) > MAX_TEXTS_PER_REQUEST:
        raise BadRequest(f"at most {MAX_TEXTS_PER_REQUEST} texts per request, got {len(items)}", 413)
    texts = []
    for i, item in enumerate(items):
        if isinstance(item, dict) and key == "instances":
            if "text" not in item:
                raise BadRequest(f"instance {i}: expected a string or {{\"text\": \"...\"}}, got an object with "
                                 f"{', '.join(map(repr, list(item)[:5])) or 'no fields'}")
            item = item["text"]
        if not isinstance(item, str):
            raise BadRequest(f"text {i}: expected a string, got {json_kind(item)}")
        item = nul_as_space(item)  # as every model reads it (textrules): "\u0000" alone is empty
        if not item.strip():
            raise BadRequest(f"text {i} is empty")
        if len(item) > MAX_TEXT_CHARS:
            raise BadRequest(f"text {i} is longer than {MAX_TEXT_CHARS:,} characters", 413)
        try:
            item.encode("utf-8")
        except UnicodeEncodeError:  # a lone surrogate ("\ud800" in the JSON): no UTF-8 text has it
            raise BadRequest(f"text {i} is not valid Unicode (it holds a lone surrogate)") from None
        texts.append(item)
    return texts


class Batcher:
    """Collects the texts of concurrent requests and runs the model once per batch."""

    def __init__(self, predictor, max_batch: int = 64, max_wait_ms: float = 5.0) -> None:
        self.predictor, self.max_batch, self.max_wait = predictor, max_batch, max_wait_ms / 1000
        self.queue: asyncio.Queue | None = None
        self.task: asyncio.Task | None = None
        self.batches = 0

    async def start(self) -> None:
        self.queue = asyncio.Queue()
        self.task = asyncio.create_task(self._run())

    async def stop(self) -> None:
        if self.task is not None:
            self.task.cancel()

    async def predict(self, texts: list[str]):
        future = asyncio.get_running_loop().create_future()
        await self.queue.put((texts, future))
        return await future

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            pending = [await self.queue.get()]
            size = len(pending[0][0])
            deadline = loop.time() + self.max_wait
            while size < self.max_batch:
                timeout = deadline - loop.time()
                if timeout <= 0:
                    break
                try:
                    item = await asyncio.wait_for(self.queue.get(), timeout)
                except asyncio.TimeoutError:
                    break
                pending.append(item)
                size += len(item[0])
            texts = [t for batch, _ in pending for t in batch]
            try:
                probs = await loop.run_in_executor(None, self.predictor.probabilities, texts)
            except Exception as err:  # the model failed: every waiting request hears it
                for _, future in pending:
                    if not future.done():
                        future.set_exception(err)
                continue
            self.batches += 1
            start = 0
            for batch, future in pending:
                if not future.done():
                    future.set_result(probs[start:start + len(batch)])
                start += len(batch)


def _predictions(probs, labels: list[str], thresholds) -> list[dict]:
    """Each text's answer: its label and probability (a multi-label run: every label at or above its
    threshold, most probable first), and every label's probability."""
    out = []
    answers = task.decide(probs) if thresholds is None else None
    for i, p in enumerate(probs):
        every = {label: float(v) for label, v in zip(labels, p)}
        if thresholds is not None:
            chosen = task.chosen(p, thresholds)
            out.append({"labels": [labels[j] for j in chosen], "probabilities": every})
            continue
        best = int(answers[i])
        out.append({"label": labels[best], "probability": float(p[best]), "probabilities": every})
    return out


async def _body_of(request) -> Any:
    """The request's JSON body; BadRequest (400) when it is not JSON or is nested too deeply."""
    import json

    raw = await _read_body(request)
    try:
        return json.loads(raw)
    except json.JSONDecodeError as err:
        raise BadRequest(f"the request body is not valid JSON ({err})") from None
    except (ValueError, UnicodeDecodeError):  # not UTF-8, or an integer of more than 4,300 digits
        raise BadRequest("the request body is not valid JSON text (UTF-8, numbers of at most 4,300 digits)") from None
    except RecursionError:  # e.g. 100,000 nested lists: the client's fault, not the server's
        raise BadRequest("the request body is nested too deeply") from None


async def _read_body(request) -> bytes:
    """The body, at most MAX_BODY_BYTES (413 beyond: a declared Content-Length before reading); a client gone
    mid-body is a 400 answered to no one, not a traceback in the server's log."""
    from starlette.requests import ClientDisconnect

    too_big = f"the request body is larger than {MAX_BODY_BYTES >> 20} MiB; send fewer or shorter texts per request"
    declared = request.headers.get("content-length", "")
    if declared.strip().isdigit() and int(declared) > MAX_BODY_BYTES:
        raise BadRequest(too_big, 413)
    chunks, size = [], 0
    try:
        async for chunk in request.stream():
            size += len(chunk)
            if size > MAX_BODY_BYTES:
                raise BadRequest(too_big, 413)
            chunks.append(chunk)
    except ClientDisconnect:
        raise BadRequest("the client closed the connection before the whole body arrived") from None
    return b"".join(chunks)


def _add_error_handlers(app) -> None:
    """Every failure answered as JSON {"error"}: the client's with its 4xx, the model's with 500."""
    from fastapi.exceptions import RequestValidationError
    from fastapi.responses import JSONResponse
    from starlette.exceptions import HTTPException

    @app.exception_handler(BadRequest)
    async def bad_request(request, err: BadRequest):
        return JSONResponse({"error": str(err)}, status_code=err.status)

    @app.exception_handler(HTTPException)
    async def http_error(request, err: HTTPException):
        return JSONResponse({"error": str(err.detail)}, status_code=err.status_code)

    @app.exception_handler(RequestValidationError)
    async def invalid(request, err: RequestValidationError):
        return JSONResponse({"error": "invalid request"}, status_code=400)

    @app.exception_handler(Exception)
    async def unexpected(request, err: Exception):
        return JSONResponse({"error": f"the model failed on this request ({type(err).__name__})"}, status_code=500)


def create_app(run_dir: str | Path, *, max_batch: int = 64, max_wait_ms: float = 5.0, name: str | None = None):
    """The FastAPI app serving the run in `run_dir` (the model is loaded here, once)."""
    from contextlib import asynccontextmanager

    from fastapi import FastAPI, Request

    from textclf.prediction import load_predictor
    from textclf.runs import Run

    predictor = load_predictor(run_dir)
    labels = list(predictor.labels)
    model_name = name or str(Run(predictor.run_dir).info.get("model") or "textclf")
    batcher = Batcher(predictor, max_batch=max_batch, max_wait_ms=max_wait_ms)
    predictor.probabilities(["warm up"])  # the first call traces the model: not in a client's latency

    @asynccontextmanager
    async def lifespan(app):
        await batcher.start()
        yield
        await batcher.stop()

    app = FastAPI(title="textclf", lifespan=lifespan)

    thresholds = predictor.thresholds  # a multi-label run's, per label
    predictions = lambda probs: _predictions(probs, labels, thresholds)  # noqa: E731
    _add_error_handlers(app)

    @app.get("/health")
    async def health():
        return {"status": "ok", "model": model_name, "labels": labels, "multilabel": thresholds is not None,
                "batches": batcher.batches}

    @app.post("/predict")
    async def predict(request: Request):
        texts = _texts_from(await _body_of(request), "texts")
        return {"predictions": predictions(await batcher.predict(texts))}

    @app.post("/v1/models/{spec}")
    async def tf_serving(spec: str, request: Request):
        wanted, _, verb = spec.partition(":")
        if verb != "predict":
            raise BadRequest(f"unknown method {verb!r}: POST /v1/models/{model_name}:predict", 404)
        if wanted != model_name:
            raise BadRequest(f"no model {wanted!r}; this server serves {model_name!r}", 404)
        texts = _texts_from(await _body_of(request), "instances")
        return {"predictions": predictions(await batcher.predict(texts))}

    return app


def serve(run_dir: str | Path, *, host: str = "127.0.0.1", port: int = 8501, max_batch: int = 64,
          max_wait_ms: float = 5.0, name: str | None = None, ready=None) -> None:
    """Load the run and serve it until SIGTERM / Ctrl-C. `ready(url)` is called once it listens."""
    import socket

    import uvicorn

    from textclf.errors import TextclfError

    try:  # a port in use is one line before the model loads, not uvicorn's log and exit 3
        with socket.create_server((host, port)):
            pass
    except OSError as err:
        raise TextclfError(f"cannot serve on {host}:{port}: {err.strerror or err}") from None
    app = create_app(run_dir, max_batch=max_batch, max_wait_ms=max_wait_ms, name=name)
    config = uvicorn.Config(app, host=host, port=port, log_level="warning", access_log=False, lifespan="on")
    server = uvicorn.Server(config)
    if ready is not None:
        original = server.startup

        async def startup(sockets=None):
            await original(sockets)
            if server.started:
                ready(f"http://{host}:{port}")

        server.startup = startup
    try:
        server.run()
    except KeyboardInterrupt:  # uvicorn shut down cleanly, then re-raised the SIGTERM / SIGINT it caught
        from textclf.errors import termination_handled

        termination_handled()  # a server's SIGTERM is its stop: exit 0, not "terminated" (143)
        return
    except SystemExit:  # uvicorn's own exit on a failed startup
        raise TextclfError(f"cannot serve on {host}:{port} (the server did not start)") from None
    except OSError as err:
        raise TextclfError(f"cannot serve on {host}:{port}: {err.strerror or err}") from None
    if not server.started:
        raise TextclfError(f"cannot serve on {host}:{port} (is the port in use?)")
