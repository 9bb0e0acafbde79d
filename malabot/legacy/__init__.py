"""`malabot legacy split`: the legacy bot's single database split into one tenant file per server.

Modules, in the order a run uses them:
  schema_detect  which legacy variant a file is (global, per-guild columns, half-way), or a refusal
  reader         read-only opening, fingerprint, and the rows of each legacy table
  evidence       who is known to be a member of which server (rows, the --members CSV)
  placement      where each row goes: its server, its member's servers, or the holding file
  mapping        pure rules: settings, templates, dates
  build          one server's (or the holding file's) new rows from its legacy rows
  writer         the tenant files themselves: template copy, build-then-rename, merge, holding file
  workers        forked worker processes for runs over many servers
  report         the ledger that accounts for every legacy row, and its printed report
  split          the run: lock, read, place, build and write, check that no row is unaccounted for
"""
