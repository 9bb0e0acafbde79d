"""Server backups: an on-demand copy for the server's admins, nightly snapshots kept on the bot's host
(`tenants/backups/<guild>/`, the newest `backup_keep` of them) and restore of a snapshot. The nightly
pass also deletes what is past the archive retention: old archives, and the snapshots of servers the
bot left longer ago than that.

Wiring: the composition root builds `BackupService`; once the bot's guilds are open, the backup cog
adds `nightly_snapshot_job(service)` (malabot.features.backups.job) to the scheduler.
"""
