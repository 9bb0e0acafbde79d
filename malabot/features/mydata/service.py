"""`/mydata export` and `/mydata delete`: a member's own data in the server they ask from.

The confirmation of a delete is the cog's job (a button); this service erases when called.
"""

from __future__ import annotations

from dataclasses import dataclass

from malabot.clock import Clock
from malabot.features.mydata.export import export_filename, export_json
from malabot.member_data import MemberData, PurgeReport

# What the member is told before they confirm a delete.
DELETE_CONFIRMATION = (
    "This erases everything this bot stores about you in this server (XP, check-ins, birthday, "
    "verification, …). Moderation cases about you are kept. This cannot be undone."
)


@dataclass(frozen=True)
class ExportFile:
    filename: str
    content: bytes
    row_count: int


class MyDataService:
    def __init__(self, member_data: MemberData, clock: Clock) -> None:
        self._member_data = member_data
        self._clock = clock

    async def export(self, guild_id: int, user_id: int) -> ExportFile:
        """Every row about the member in this server, as a JSON file."""
        tables = await self._member_data.export(guild_id, user_id)
        now = self._clock()
        return ExportFile(
            filename=export_filename(guild_id, user_id, now),
            content=export_json(guild_id, user_id, now, tables),
            row_count=sum(len(rows) for rows in tables.values()),
        )

    async def delete(self, guild_id: int, user_id: int) -> PurgeReport:
        """Erase the member's data in this server (moderation cases about them stay), in one transaction."""
        return await self._member_data.purge(guild_id, user_id)
