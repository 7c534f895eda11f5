"""The `gatebot` command line. Each command group lives in its own module and exports COMMANDS."""
