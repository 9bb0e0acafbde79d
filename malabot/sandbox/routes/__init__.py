"""The REST half of the fake Discord API, mounted under /api/v10.

One middleware reads every body (JSON, form or multipart), checks the bot token, turns
`ApiError` into Discord's JSON error shape and records the request with its answer.
"""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import unquote

from aiohttp import web
from aiohttp.typedefs import Handler

from malabot.sandbox.context import BODY, REASON, SANDBOX, Sandbox
from malabot.sandbox.errors import ApiError, too_large, unauthorized
from malabot.sandbox.http_io import ParsedBody, json_response, read_body
from malabot.sandbox.recorder import RecordedRequest
from malabot.sandbox.routes import commands, guilds, interactions, members, messages, meta, roles

API_PREFIX = "/api/v10"
# Interaction callbacks and webhooks authenticate with the interaction token in the path.
_TOKENLESS_PREFIXES = ("/interactions/", "/webhooks/")
MAX_UPLOAD = 25 * 1024 * 1024


def build_api(sandbox: Sandbox) -> web.Application:
    api = web.Application(middlewares=[_api_middleware], client_max_size=MAX_UPLOAD)
    api[SANDBOX] = sandbox
    for module in (meta, commands, interactions, messages, guilds, roles, members):
        module.register(api)
    return api


@web.middleware
async def _api_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    sandbox = request.config_dict[SANDBOX]
    path = request.path.removeprefix(API_PREFIX)
    body = ParsedBody(None, {}, ())
    try:
        body = await read_body(request)
        request[BODY] = body
        request[REASON] = unquote(request.headers.get("X-Audit-Log-Reason", ""))
        _check_token(request, path, sandbox.token)
        await sandbox.holds.pass_through(request.method, path, body.json)
        limited = sandbox.rate_limits.answer_for(request.method, path, body.json)
        response: web.StreamResponse = limited if limited is not None else await handler(request)
    except ApiError as error:
        response = json_response(error.body(), error.status)
    except web.HTTPRequestEntityTooLarge:  # the whole body over MAX_UPLOAD, as aiohttp measures it
        response = json_response(too_large().body(), 413)
    except web.HTTPMethodNotAllowed:
        response = json_response({"message": "405: Method Not Allowed", "code": 0}, 405)
    except web.HTTPNotFound:
        response = json_response({"message": "404: Not Found", "code": 0}, 404)
    sandbox.log.record(RecordedRequest(
        method=request.method, path=path, query=dict(request.query), json=body.json, form=body.form,
        files=body.files, reason=request.get(REASON) or None, status=response.status,
        response=_json_of(response),
    ))
    return response


def _check_token(request: web.Request, path: str, token: str) -> None:
    if path.startswith(_TOKENLESS_PREFIXES):
        return
    if request.headers.get("Authorization") != f"Bot {token}":
        raise unauthorized()


def _json_of(response: web.StreamResponse) -> Any:
    if isinstance(response, web.Response) and response.body and response.content_type == "application/json":
        body = response.body
        return json.loads(body if isinstance(body, bytes | str) else bytes(body))  # type: ignore[arg-type]
    return None
