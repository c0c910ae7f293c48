"""The HTTP server: an OpenAI-compatible chat endpoint that answers each user with their own
LoRA adapter (unified, then base, as fallbacks) and reports the device actions of every reply.

Routes (vLLM's where vLLM has one): `POST /v1/chat/completions`, `GET /v1/models`,
`POST /v1/load_lora_adapter` and `/v1/unload_lora_adapter` (admin), `GET
/v1/users/{id}/routines`, all behind the credentials when configured (a bearer token, or per-user
keys: a key acts only for its users and learns nothing about others), and `GET /healthz` (open:
ok or not ok, nothing else). Every error is a JSON body `{"error": {message, type, code}}`; a
500 carries only an error id, the details are in the server log.
"""

from __future__ import annotations

import asyncio
import logging
import signal
import threading
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Annotated

from fastapi import Depends, FastAPI, Path, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, StreamingResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from adaptcommand import __version__
from adaptcommand.config import first_error
from adaptcommand.errors import AdaptCommandError
from adaptcommand.models.adapters import UNIFIED
from adaptcommand.models.loading import load_model
from adaptcommand.models.profile_prompt import profile_text, uses_profile
from adaptcommand.models.prompting import ProfileText, render_prompt
from adaptcommand.serving.adapter_cache import (
    BASE_ID,
    PERSONA_ID,
    AdapterRegistry,
    InvalidUserError,
    Selection,
)
from adaptcommand.serving.batch_runner import Engine, Job
from adaptcommand.serving.batcher import MicroBatcher
from adaptcommand.serving.chat import completion, conversation, decoding, stream_events
from adaptcommand.serving.config import ServeSettings
from adaptcommand.serving.errors import BadRequestError, ForbiddenError, NotFoundError
from adaptcommand.serving.identify import Centroids, identify, load_centroids
from adaptcommand.serving.keys import KeyStore, Principal
from adaptcommand.serving.profile import serving_profile_options, session_context
from adaptcommand.serving.routines import user_profile, user_routines
from adaptcommand.serving.schemas import (
    Candidate,
    ChatRequest,
    ChatResponse,
    ErrorResponse,
    Health,
    Identification,
    LoadLoraRequest,
    LoraStatus,
    ModelCard,
    ModelList,
    UnloadLoraRequest,
    UserRoutines,
)
from adaptcommand.serving.security import (
    BodyLimitMiddleware,
    authenticator,
    current_principal,
    error_response,
    internal_error,
    internal_error_response,
)
from adaptcommand.serving.streaming import StreamChannel

log = logging.getLogger(__name__)
ADAPTER_HEADER = "X-AdaptCommand-Adapter"
ERRORS = {code: {"model": ErrorResponse} for code in (400, 401, 403, 404, 413, 422, 500)}
Who = Annotated[Principal, Depends(current_principal)]


class Server:
    """What the routes share: settings, the adapter registry, the engine and its batcher."""

    def __init__(self, settings: ServeSettings) -> None:
        self.settings = settings
        self.registry = AdapterRegistry(settings.adapters_dir)
        self.keys = KeyStore(settings.keys_file) if settings.keys_file else None
        self.engine = Engine(load_model(settings.model, device=settings.device,
                                        seed=settings.seed), settings.cache_size,
                             settings.max_context_tokens)
        self.batcher = MicroBatcher(self.engine.run, max_batch=settings.max_batch_size,
                                    max_adapters=settings.cache_size,
                                    wait_s=settings.batch_wait_ms / 1000)
        self.centroids: Centroids | None = (
            load_centroids(settings.data_dir) if settings.data_dir else None
        )
        self._identify_lock = asyncio.Lock()
        self.profile_options = serving_profile_options(settings.adapters_dir,
                                                       settings.prompt_profile)

    @asynccontextmanager
    async def lifespan(self, _: FastAPI) -> AsyncIterator[None]:
        await self.batcher.start()
        loop = asyncio.get_running_loop()
        hup = self.keys is not None and _main_thread_loop(loop)
        if hup:  # rotation without restart: `kill -HUP <pid>` rereads the keys file
            assert self.keys is not None
            loop.add_signal_handler(signal.SIGHUP, self.keys.reload)
        try:
            yield
        finally:
            if hup:
                loop.remove_signal_handler(signal.SIGHUP)
            await self.batcher.stop()

    async def health(self) -> JSONResponse:
        """ok or not ok: nothing about users, adapters or load (the route is open)."""
        ok = self.batcher.running
        return JSONResponse(Health(status="ok" if ok else "not ok").model_dump(),
                            status_code=200 if ok else 503)

    async def models(self, who: Who) -> ModelList:
        """The base model and every adapter this caller may use, read from the directory now."""
        cards = [ModelCard(id=BASE_ID, kind="base", root=self.settings.model)]
        cards += [ModelCard(id=name, kind="unified" if name == UNIFIED else "user",
                            parent=BASE_ID)
                  for name in self.registry.available()
                  if name == UNIFIED or who.may_act_for(name)]
        return ModelList(data=cards)

    async def chat(self, request: ChatRequest, who: Who) -> JSONResponse | StreamingResponse:
        system, turns = conversation(request, self.settings.system_prompt)
        settings = decoding(request, self.settings)
        options = self.profile_options  # metadata is read only when the prompt uses it
        context = (session_context(request.metadata)
                   if uses_profile(options) or options.context_line else {})
        selection, identified, persona = await self._select(request, who)
        profile = await self._profile_text(persona, context)
        prompt = render_prompt(self.engine.loaded.tokenizer, turns, system,
                               self.settings.max_context_messages, profile)  # no encoding
        model = request.model if _names_adapter(request.model, self.settings) else (
            self.settings.model)
        headers = {ADAPTER_HEADER: selection.adapter}
        if request.stream:
            return await self._stream(Job(prompt, selection, settings, StreamChannel()),
                                      model, identified, headers)
        try:
            reply = await self.batcher.submit(Job(prompt, selection, settings))
        except BadRequestError:
            raise
        except Exception as exc:  # the request fails, the server keeps serving
            return internal_error_response("generation failed", exc)
        response = completion(reply, max_tokens=settings.max_new_tokens, model=model,
                              adapter=selection.adapter, identified=identified)
        return JSONResponse(response.model_dump(), headers=headers)

    async def _stream(self, job: Job, model: str, identified: Identification | None,
                      headers: dict[str, str]) -> StreamingResponse | JSONResponse:
        """Answer once decoding has begun (a failure before it is a plain error response);
        then every piece of text is sent as it is decoded."""
        assert job.stream is not None
        reply = asyncio.ensure_future(self.batcher.submit(job))
        started = asyncio.ensure_future(job.stream.started.wait())
        await asyncio.wait({reply, started}, return_when=asyncio.FIRST_COMPLETED)
        if not job.stream.started.is_set():
            started.cancel()
            exc = reply.exception()
            if isinstance(exc, BadRequestError):
                raise exc
            return internal_error_response("generation failed", exc)
        events = stream_events(job.stream, reply, model=model, adapter=job.selection.adapter,
                               max_tokens=job.settings.max_new_tokens, identified=identified,
                               on_error=lambda exc: internal_error("generation failed", exc))
        return StreamingResponse(events, media_type="text/event-stream",
                                 headers={**headers, "Cache-Control": "no-cache"})

    async def _profile_text(self, persona: str | None,
                            context: dict[str, str]) -> ProfileText | None:
        """The profile/context text the adapters were trained with (`serving.profile`), from
        this persona's own profile only (resolved after the key check), None when off."""
        options = self.profile_options
        profile = None
        if uses_profile(options) and persona is not None and PERSONA_ID.fullmatch(persona):
            profile = await asyncio.to_thread(user_profile, persona, self.registry.root,
                                              self.settings.profiles)
        return profile_text(options, profile, context)

    async def _select(self, request: ChatRequest, who: Principal
                      ) -> tuple[Selection, Identification | None, str | None]:
        """Which adapter answers and for which user (whose profile the prompt carries), after
        checking that `who` may act for the user named. The same 403 answers a user who exists
        and one who does not."""
        named = request.model if _names_adapter(request.model, self.settings) else None
        user = request.user or None
        if named not in (None, UNIFIED, BASE_ID):
            if user is not None and user != named:
                raise BadRequestError(f"model names adapter {named!r} but user is {user!r}")
            user = named
        if user is None and who.users is not None and len(who.users) == 1:
            user = next(iter(who.users))  # a key for one user acts for that user
        if user is not None and not who.may_act_for(user):
            raise ForbiddenError(f"this key may not act for user {user[:64]!r}")
        if named == BASE_ID:
            return Selection(BASE_ID, None), None, user
        if named is not None:
            path = self.registry.path_of(named)
            if path is None:
                raise NotFoundError(f"the model {named!r} does not exist")
            return Selection(named, path), None, user
        if request.identify_user and who.users is not None:
            raise ForbiddenError("identify_user needs a key that may act for every user")
        identified = await self._identify(request) if user is None else None
        persona = _persona(user, identified)
        return self.registry.select(persona), identified, persona

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

    async def routines(self, user_id: Annotated[str, Path(max_length=200)],
                       who: Who) -> UserRoutines:
        """The user's mined routines: their own key, or one that acts for everyone."""
        if not who.may_act_for(user_id):
            raise ForbiddenError(f"this key may not act for user {user_id[:64]!r}")
        if not PERSONA_ID.fullmatch(user_id):
            raise InvalidUserError(f"invalid persona id {user_id[:64]!r}")
        found = await asyncio.to_thread(user_routines, user_id, self.registry.root,
                                        self.settings.profiles)
        if found is None:
            raise NotFoundError(f"no mined routines for user {user_id!r}")
        return UserRoutines(persona_id=user_id, routines=found)

    async def load_lora(self, body: LoadLoraRequest, who: Who) -> LoraStatus:
        """vLLM's runtime loading: serve the adapter directory `lora_path` as `lora_name`."""
        _require_admin(who)
        self.registry.add(body.lora_name, body.lora_path)
        log.info("adapter %s added at runtime by %s", body.lora_name, who.name)
        return LoraStatus(status="loaded", lora_name=body.lora_name)

    async def unload_lora(self, body: UnloadLoraRequest, who: Who) -> LoraStatus:
        """Stop serving `lora_name` (requests fall back as for an unknown user); the LRU cache
        drops its weights when it needs the room."""
        _require_admin(who)
        if not PERSONA_ID.fullmatch(body.lora_name) or not self.registry.remove(body.lora_name):
            raise NotFoundError(f"no adapter named {body.lora_name[:64]!r} is loaded")
        log.info("adapter %s unloaded at runtime by %s", body.lora_name, who.name)
        return LoraStatus(status="unloaded", lora_name=body.lora_name)


def _require_admin(who: Principal) -> None:
    if not who.admin:
        raise ForbiddenError("loading and unloading adapters needs an admin key "
                             "(--token, or an admin entry of the keys file)")


def _names_adapter(model: str | None, settings: ServeSettings) -> bool:
    """Whether a request's `model` picks the adapter (vLLM) rather than leaving it to `user`."""
    return model is not None and model != settings.model


def _main_thread_loop(loop: asyncio.AbstractEventLoop) -> bool:
    """Signal handlers can be installed only from the main thread (not under TestClient)."""
    return threading.current_thread() is threading.main_thread() and isinstance(
        loop, asyncio.BaseEventLoop)


def _persona(user: str | None, identified: Identification | None) -> str | None:
    """Whose adapter to use: the named user (validated by the registry), else the identified
    persona when its id could name an adapter at all, else nobody (the fallback)."""
    if identified is None:
        return user
    return identified.persona_id if PERSONA_ID.fullmatch(identified.persona_id) else None


def create_app(settings: ServeSettings) -> FastAPI:
    """Load the model (and identification centroids) now; the batcher starts with the app."""
    server = Server(settings)
    app = FastAPI(title="AdaptCommand assistant", version=__version__, lifespan=server.lifespan)
    app.state.server = server
    app.add_middleware(BodyLimitMiddleware, max_bytes=settings.max_body_bytes)
    _install_error_handlers(app)
    app.dependency_overrides[current_principal] = authenticator(settings.token, server.keys)
    app.get("/healthz", response_model=Health,
            summary="ok or not ok (no token needed, nothing else said).")(server.health)
    app.get("/v1/models", response_model=ModelList, responses=ERRORS,
            summary="Base model and the adapters this key may use, as of now.")(server.models)
    app.post("/v1/chat/completions", response_model=ChatResponse,
             responses=ERRORS, summary="Reply as the user's assistant.")(server.chat)
    app.get("/v1/users/{user_id}/routines", response_model=UserRoutines, responses=ERRORS,
            summary="The user's mined routines.")(server.routines)
    app.post("/v1/load_lora_adapter", response_model=LoraStatus, responses=ERRORS,
             summary="Serve an adapter directory under a name (admin).")(server.load_lora)
    app.post("/v1/unload_lora_adapter", response_model=LoraStatus, responses=ERRORS,
             summary="Stop serving an adapter (admin).")(server.unload_lora)
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

    @app.exception_handler(ForbiddenError)
    async def forbidden(_: Request, exc: AdaptCommandError) -> JSONResponse:
        return error_response(403, str(exc))

    @app.exception_handler(NotFoundError)
    async def not_found(_: Request, exc: AdaptCommandError) -> JSONResponse:
        return error_response(404, str(exc))

    @app.exception_handler(AdaptCommandError)
    async def refused(_: Request, exc: AdaptCommandError) -> JSONResponse:
        return internal_error_response("the request could not be served", exc)

    @app.exception_handler(Exception)
    async def crashed(_: Request, exc: Exception) -> JSONResponse:
        return internal_error_response("internal error", exc)

