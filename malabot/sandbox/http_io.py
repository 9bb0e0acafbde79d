"""HTTP plumbing of the fake API: reading JSON/form/multipart bodies and answering Discord-style JSON."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from aiohttp import web

from malabot.sandbox.errors import invalid_form
from malabot.sandbox.state import UploadedFile

FORM_TYPES = ("multipart/form-data", "application/x-www-form-urlencoded")


@dataclass(frozen=True)
class ParsedBody:
    json: Any
    form: dict[str, str]
    files: tuple[UploadedFile, ...]

    def object(self) -> dict[str, Any]:
        """The JSON body as an object (routes that need one); `{}` without a body."""
        if self.json is None:
            return {}
        if not isinstance(self.json, dict):
            raise invalid_form("body", "expected a JSON object")
        return self.json


async def read_body(request: web.Request) -> ParsedBody:
    """JSON body, or form/multipart with `payload_json` and `files[n]` parts, as py-cord sends them."""
    if request.content_type in FORM_TYPES:
        fields: dict[str, str] = {}
        files: list[UploadedFile] = []
        for name, value in (await request.post()).items():
            if isinstance(value, web.FileField):
                files.append(UploadedFile(name, value.filename, value.file.read(), value.content_type))
            else:
                fields[name] = value if isinstance(value, str) else bytes(value).decode()
        payload = fields.pop("payload_json", None)
        return ParsedBody(_decode(payload) if payload else None, fields, tuple(files))
    raw = await request.read()
    return ParsedBody(_decode(raw) if raw else None, {}, ())


def _decode(raw: str | bytes) -> Any:
    try:
        return json.loads(raw)
    except ValueError:
        raise invalid_form("body", "the body is not valid JSON") from None


def query_flag(request: web.Request, name: str) -> bool:
    """A boolean query parameter; py-cord sends them both ways (with_response=true, wait=1)."""
    return request.query.get(name, "").lower() in ("1", "true")


def json_response(data: Any, status: int = 200) -> web.Response:
    # Exactly "application/json": py-cord treats "application/json; charset=utf-8" as plain text.
    return web.Response(body=json.dumps(data).encode(), status=status,
                        headers={"Content-Type": "application/json"})


def no_content() -> web.Response:
    return web.Response(status=204)
