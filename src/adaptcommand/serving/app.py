"""The HTTP server: an OpenAI-compatible chat endpoint that answers each user with their own
LoRA adapter (unified, then base, as fallbacks) and reports the device actions of every reply.

Routes: `POST /v1/chat/completions`, `GET /v1/models` (both behind the optional bearer token)
and `GET /healthz` (open). Every error is a JSON body `{"error": {message, type, code}}`.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import Depends, FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, StreamingResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from adaptcommand import __version__
from adaptcommand.config import first_error
from adaptcommand.errors import AdaptCommandError
from adaptcommand.models.adapters import UNIFIED
from adaptcommand.models.loading import load_model
from adaptcommand.models.prompting import render_prompt
from adaptcommand.serving.adapters import BASE_ID, PERSONA_ID, AdapterRegistry, InvalidUserError
from adaptcommand.serving.batcher import MicroBatcher
from adaptcommand.serving.chat import (
    BadRequestError,
    completion,
    conversation,
    decoding,
    sse_events,
)
from adaptcommand.serving.config import ServeSettings
from adaptcommand.serving.engine import Engine, Job
from adaptcommand.serving.identify import Centroids, identify, load_centroids
from adaptcommand.serving.schemas import (
    Candidate,
    ChatRequest,
    ChatResponse,
    ErrorResponse,
    Identification,
    ModelCard,
    ModelList,
)
from adaptcommand.serving.security import BodyLimitMiddleware, error_response, token_guard

log = logging.getLogger(__name__)
ADAPTER_HEADER = "X-AdaptCommand-Adapter"
ERRORS = {code: {"model": ErrorResponse} for code in (400, 401, 413, 422, 500)}


class Server:
    """What the routes share: settings, the adapter registry, the engine and its batcher."""

    def __init__(self, settings: ServeSettings) -> None:
        self.settings = settings
        self.registry = AdapterRegistry(settings.adapters_dir)
        self.engine = Engine(load_model(settings.model, device=settings.device,
                                        seed=settings.seed), settings.cache_size)
        self.batcher = MicroBatcher(self.engine.run, max_batch=settings.max_batch_size,
                                    max_adapters=settings.cache_size,
                                    wait_s=settings.batch_wait_ms / 1000)
        self.centroids: Centroids | None = (
            load_centroids(settings.data_dir) if settings.data_dir else None
        )
        self._identify_lock = asyncio.Lock()

    @asynccontextmanager
    async def lifespan(self, _: FastAPI) -> AsyncIterator[None]:
        await self.batcher.start()
        try:
            yield
        finally:
            await self.batcher.stop()

    async def health(self) -> dict[str, object]:
        return {"status": "ok", "model": self.settings.model,
                "loaded_adapters": self.engine.cache.loaded,
                "identify": self.centroids is not None,
                "batches_run": self.batcher.batches_run, "requests_run": self.batcher.jobs_run}

    async def models(self) -> ModelList:
        """The base model and every servable adapter, read from the directory now."""
        cards = [ModelCard(id=BASE_ID, kind="base")]
        cards += [ModelCard(id=name, kind="unified" if name == UNIFIED else "user")
                  for name in self.registry.available()]
        return ModelList(data=cards)

    async def chat(self, request: ChatRequest) -> JSONResponse | StreamingResponse:
        system, turns = conversation(request, self.settings.system_prompt)
        settings = decoding(request, self.settings)
        identified = await self._identify(request) if request.user is None else None
        selection = self.registry.select(_persona(request, identified))
        prompt = render_prompt(self.engine.loaded.tokenizer, turns, system,
                               self.settings.max_context_messages)  # template only, no encoding
        try:
            reply = await self.batcher.submit(Job(prompt, selection, settings))
        except Exception as exc:  # the request fails, the server keeps serving
            log.exception("generation failed")
            return error_response(500, f"generation failed: {type(exc).__name__}: {exc}")
        response = completion(reply, max_tokens=settings.max_new_tokens,
                              model=self.settings.model, adapter=selection.adapter,
                              identified=identified)
        headers = {ADAPTER_HEADER: selection.adapter}
        if request.stream:
            return StreamingResponse(sse_events(response), media_type="text/event-stream",
                                     headers={**headers, "Cache-Control": "no-cache"})
        return JSONResponse(response.model_dump(), headers=headers)

    async def _identify(self, request: ChatRequest) -> Identification | None:
        """The likeliest persona from the request's user messages, when the request asks."""
        if not request.identify_user:
            return None
        if self.centroids is None:
            raise BadRequestError("identify_user needs the server started with --data")
        texts = [m.content for m in request.messages if m.role == "user" and m.content.strip()]
        if not texts:
            raise BadRequestError("identify_user needs a non-empty user message")
        async with self._identify_lock:  # one encoder, one thread at a time (its tokenizer)
            ranked = await asyncio.to_thread(identify, self.centroids, texts)
        return Identification(persona_id=ranked[0][0], score=ranked[0][1],
                              candidates=[Candidate(persona_id=p, score=s) for p, s in ranked])


def _persona(request: ChatRequest, identified: Identification | None) -> str | None:
    """Whose adapter to use: the named user (validated by the registry), else the identified
    persona when its id could name an adapter at all, else nobody (the fallback)."""
    if identified is None:
        return request.user
    return identified.persona_id if PERSONA_ID.fullmatch(identified.persona_id) else None


def create_app(settings: ServeSettings) -> FastAPI:
    """Load the model (and identification centroids) now; the batcher starts with the app."""
    server = Server(settings)
    app = FastAPI(title="AdaptCommand assistant", version=__version__, lifespan=server.lifespan)
    app.state.server = server
    app.add_middleware(BodyLimitMiddleware, max_bytes=settings.max_body_bytes)
    _install_error_handlers(app)
    guard = [Depends(token_guard(settings.token))]
    app.get("/healthz", summary="Liveness and what is loaded (no token needed).")(server.health)
    app.get("/v1/models", dependencies=guard, response_model=ModelList, responses=ERRORS,
            summary="Base model and adapters available now.")(server.models)
    app.post("/v1/chat/completions", dependencies=guard, response_model=ChatResponse,
             responses=ERRORS, summary="Reply as the user's assistant.")(server.chat)
    return app


def _install_error_handlers(app: FastAPI) -> None:
    """Turn every failure into the JSON error body, with the status that fits it."""

    @app.exception_handler(StarletteHTTPException)
    async def http_error(_: Request, exc: StarletteHTTPException) -> JSONResponse:
        return error_response(exc.status_code, str(exc.detail), headers=exc.headers)

    @app.exception_handler(RequestValidationError)
    async def invalid_body(_: Request, exc: RequestValidationError) -> JSONResponse:
        field, message = first_error(exc)
        if exc.errors()[0]["type"] == "json_invalid":
            return error_response(400, f"malformed JSON body: {message}")
        if field == "body":  # not JSON at all, or not an object
            return error_response(400, "the request body must be a JSON object")
        return error_response(422, f"field '{field.removeprefix('body.')}': {message}")

    @app.exception_handler(BadRequestError)
    @app.exception_handler(InvalidUserError)
    async def bad_request(_: Request, exc: AdaptCommandError) -> JSONResponse:
        return error_response(400, str(exc))

    @app.exception_handler(AdaptCommandError)
    async def refused(_: Request, exc: AdaptCommandError) -> JSONResponse:
        log.error("request refused: %s", exc)
        return error_response(500, str(exc))

