"""A local Discord-compatible server for tests and the offline demo; never talks to discord.com.

`FakeDiscord` serves enough of Discord's REST API (v10) and gateway for the real, unmodified
py-cord client; `running_bot` runs a client against it; `loopback_only` refuses real network use.
"""

from malabot.sandbox.errors import ApiError, SandboxError, SandboxTimeout
from malabot.sandbox.harness import running_bot, sandbox_client_options
from malabot.sandbox.interactions import InteractionReply
from malabot.sandbox.netguard import RealNetworkForbidden, loopback_only
from malabot.sandbox.permissions import ALL_PERMISSIONS, DEFAULT_EVERYONE, Permission
from malabot.sandbox.recorder import GatewayFrame, RecordedRequest
from malabot.sandbox.server import FakeDiscord
from malabot.sandbox.state import (
    BOT_ROLE_POSITION,
    Attachment,
    Channel,
    Guild,
    Member,
    Message,
    Overwrite,
    RegisteredCommand,
    Role,
    UploadedFile,
    User,
)

__all__ = [
    "ALL_PERMISSIONS", "BOT_ROLE_POSITION", "DEFAULT_EVERYONE", "ApiError", "Attachment", "Channel",
    "FakeDiscord", "GatewayFrame", "Guild", "InteractionReply", "Member", "Message", "Overwrite",
    "Permission", "RealNetworkForbidden", "RecordedRequest", "RegisteredCommand", "Role", "SandboxError",
    "SandboxTimeout", "UploadedFile", "User", "loopback_only", "running_bot", "sandbox_client_options",
]
