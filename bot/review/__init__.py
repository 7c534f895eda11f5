"""The review gate: diff → triage → cache → route → batch → provider → verdict."""
