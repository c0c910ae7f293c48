"""Request errors and the HTTP status each becomes (the handlers are in serving.app)."""

from __future__ import annotations

from adaptcommand.errors import AdaptCommandError


class BadRequestError(AdaptCommandError):
    """A request the server understands but will not serve as asked (400)."""


class ForbiddenError(AdaptCommandError):
    """The caller's key may not do this (403); says nothing about whether the target exists."""


class NotFoundError(AdaptCommandError):
    """A named model, adapter or profile that does not exist for this caller (404)."""


class ContextLengthError(BadRequestError):
    """A prompt that, with its max_tokens, does not fit the model's context (400)."""
