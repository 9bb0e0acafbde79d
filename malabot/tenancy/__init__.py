"""Tenancy: one SQLite file per Discord guild. Knows nothing of Discord or of features."""
