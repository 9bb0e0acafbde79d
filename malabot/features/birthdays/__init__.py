"""Birthdays: dates (rules), storage (repository), commands (service) and the pass (announcer).

Wiring, in the composition root or the bot once its member cache is ready:

    birthday_pass = build_birthday_pass(tenants, guild_settings, services.birthdays, effects, xp_service)
    add_job(scheduler, birthday_pass_job(birthday_pass))   # malabot.scheduling: every quarter hour + once now

`effects` implements ports.BirthdayEffects with py-cord; the cog calls BirthdayService only.
"""
