"""Birthdays: dates (rules), storage (repository), commands (service) and the hourly pass."""
