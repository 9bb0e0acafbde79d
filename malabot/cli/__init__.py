"""The `malabot` command line: each module here registers one group of sub-commands."""
