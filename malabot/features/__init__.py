"""Features: one package each, with rules (pure), repository (SQL), service (no discord) and cog."""
