"""gatebot: a cheap AI review gate on every PR, atomic releases with a 9-layer audit on merge."""

__version__ = "0.1.0"
