"""Message bodies the bot sends (create and edit), checked against Discord's limits.

Shared by channel messages, interaction responses and webhook follow-ups, which all take the
same JSON: content, embeds, components, attachments (+ uploaded files), flags, message_reference.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from malabot.sandbox.errors import ApiError, invalid_form, too_large
from malabot.sandbox.state import EPHEMERAL, LOADING, Attachment, Channel, Message, UploadedFile, World

MAX_CONTENT = 2000
# The largest file a bot may upload in an unboosted server or a DM, as interactions state it in
# `attachment_size_limit`; a larger one is refused with 413 / 40005.
UPLOAD_LIMIT = 10 * 1024 * 1024
MAX_EMBEDS = 10
MAX_EMBED_TOTAL = 6000
_EMBED_LIMITS = {"title": 256, "description": 4096}
# Flags a bot may set when sending: SUPPRESS_EMBEDS, EPHEMERAL, SUPPRESS_NOTIFICATIONS, IS_COMPONENTS_V2.
_SETTABLE_FLAGS = (1 << 2) | EPHEMERAL | (1 << 12) | (1 << 15)


def empty_message() -> ApiError:
    return ApiError(400, 50006, "Cannot send an empty message")


def check_content(body: dict[str, Any]) -> None:
    _check_components(body.get("components") or [])
    content = body.get("content")
    if content is not None and len(str(content)) > MAX_CONTENT:
        raise invalid_form("content", f"Must be {MAX_CONTENT} or fewer in length.")
    embeds = body.get("embeds")
    if embeds is None:
        return
    if len(embeds) > MAX_EMBEDS:
        raise invalid_form("embeds", f"Must be {MAX_EMBEDS} or fewer in length.")
    total = 0
    for index, embed in enumerate(embeds):
        for key, limit in _EMBED_LIMITS.items():
            if len(str(embed.get(key) or "")) > limit:
                raise invalid_form(f"embeds.{index}.{key}", f"Must be {limit} or fewer in length.")
        fields = embed.get("fields") or []
        if len(fields) > 25:
            raise invalid_form(f"embeds.{index}.fields", "Must be 25 or fewer in length.")
        for field_index, embed_field in enumerate(fields):
            name, value = str(embed_field.get("name") or ""), str(embed_field.get("value") or "")
            if not name.strip() or not value.strip():
                raise invalid_form(f"embeds.{index}.fields.{field_index}", "This field is required")
            if len(name) > 256 or len(value) > 1024:
                raise invalid_form(f"embeds.{index}.fields.{field_index}", "Field too long.")
        total += sum(len(str(embed.get(key) or "")) for key in ("title", "description"))
        total += sum(len(str(f.get("name", ""))) + len(str(f.get("value", ""))) for f in fields)
        footer = str((embed.get("footer") or {}).get("text") or "")
        author = str((embed.get("author") or {}).get("name") or "")
        if len(footer) > 2048 or len(author) > 256:
            raise invalid_form(f"embeds.{index}", "Must be 2048 (footer) or 256 (author name) or fewer in length.")
        total += len(footer) + len(author)
    if total > MAX_EMBED_TOTAL:
        raise invalid_form("embeds", f"Embed size exceeds maximum size of {MAX_EMBED_TOTAL}")


# Discord's limits on classic components: rows of up to 5 buttons or one select menu.
_MAX_ROWS, _MAX_PER_ROW, _MAX_OPTIONS = 5, 5, 25
_TEXT_LIMITS = {"custom_id": 100, "label": 80, "placeholder": 150}


def _check_components(rows: list[dict[str, Any]]) -> None:
    if len(rows) > _MAX_ROWS:
        raise invalid_form("components", f"Must be {_MAX_ROWS} or fewer in length.")
    for row_index, row in enumerate(rows):
        children = (row.get("components") or []) if row.get("type") == 1 else []
        if len(children) > _MAX_PER_ROW:
            raise invalid_form(f"components.{row_index}.components", f"Must be {_MAX_PER_ROW} or fewer in length.")
        for index, child in enumerate(children):
            where = f"components.{row_index}.components.{index}"
            for key, limit in _TEXT_LIMITS.items():
                if len(str(child.get(key) or "")) > limit:
                    raise invalid_form(f"{where}.{key}", f"Must be {limit} or fewer in length.")
            options = child.get("options") or []
            if len(options) > _MAX_OPTIONS or any(len(str(option.get(key) or "")) > 100
                                                  for option in options for key in ("label", "value")):
                raise invalid_form(f"{where}.options", f"Must be {_MAX_OPTIONS} or fewer, each up to 100 long.")


def new_attachments(world: World, channel_id: int, body: dict[str, Any], files: tuple[UploadedFile, ...],
                    url_root: str) -> list[Attachment]:
    """Attachments for uploaded `files[n]` parts, with descriptions from the `attachments` list."""
    if any(len(upload.data) > UPLOAD_LIMIT for upload in files):
        raise too_large()
    described = {str(a.get("id")): a for a in body.get("attachments") or [] if isinstance(a, dict)}
    made = []
    for index, upload in enumerate(files):
        # py-cord names parts files[0], files[1]...; the number is the attachment's id in the body.
        key = upload.field_name.removeprefix("files[").removesuffix("]")
        info = described.get(key) or described.get(str(index)) or {}
        made.append(world.new_attachment(
            channel_id, str(info.get("filename") or upload.filename), upload.data,
            upload.content_type or "application/octet-stream", info.get("description"), url_root,
        ))
    return made


def create_message(world: World, channel: Channel, author_id: int, body: dict[str, Any],
                   files: tuple[UploadedFile, ...], url_root: str, *, may_embed: bool = True,
                   **extra: Any) -> Message:
    """A new message from a create body; raises Discord's errors for empty or oversized ones.

    Without `may_embed` (an author lacking Embed Links in the channel) Discord drops the embeds: the
    message is what is left, and with nothing left it is an empty message."""
    check_content(body)
    attachments = new_attachments(world, channel.id, body, files, url_root)
    content = str(body.get("content") or "")
    embeds = [_with_type(e) for e in body.get("embeds") or []] if may_embed else []
    components = list(body.get("components") or [])
    if not (content or embeds or attachments or components or body.get("sticker_ids") or body.get("poll")):
        raise empty_message()
    flags = int(body.get("flags") or 0) & _SETTABLE_FLAGS | int(extra.pop("flags", 0))
    reference = body.get("message_reference") or {}
    reference_id = int(reference["message_id"]) if reference.get("message_id") else None
    return world.add_message(
        channel, author_id, content, embeds=embeds, attachments=attachments, components=components,
        flags=flags, tts=bool(body.get("tts")), nonce=body.get("nonce"), reference_id=reference_id,
        type=extra.pop("type", 19 if reference_id else 0), **extra,
    )


def edit_message(world: World, message: Message, body: dict[str, Any], files: tuple[UploadedFile, ...],
                 url_root: str, *, now: datetime, may_embed: bool = True) -> None:
    """Apply an edit body: only the keys present change; `attachments` lists the ones to keep.
    Embeds the author may not show (`may_embed`, as in `create_message`) are dropped."""
    check_content(body)
    content = str(body["content"] or "") if "content" in body else message.content
    embeds = message.embeds
    if "embeds" in body:
        embeds = [_with_type(e) for e in body["embeds"] or []] if may_embed else []
    components = list(body["components"] or []) if "components" in body else message.components
    attachments = message.attachments
    if "attachments" in body:
        keep = {str(a.get("id")) for a in body["attachments"] or [] if isinstance(a, dict)}
        attachments = [a for a in message.attachments if str(a.id) in keep]
    attachments = attachments + new_attachments(world, message.channel_id, body, files, url_root)
    if not (content or embeds or attachments or components):
        raise empty_message()
    message.content, message.embeds, message.components = content, embeds, components
    message.attachments = attachments
    if body.get("flags") is not None:
        # An edit cannot make a message ephemeral or not, nor loading.
        fixed = EPHEMERAL | LOADING
        message.flags = (int(body["flags"]) & ~fixed) | (message.flags & fixed)
    if message.loading:
        message.flags &= ~LOADING  # the deferred "thinking..." placeholder gets its content
    else:
        message.edited_at = now


def _with_type(embed: dict[str, Any]) -> dict[str, Any]:
    return {"type": "rich", **embed}
