"""Helpers for tests and fixtures: tiny tokenizers and checkpoints built on the fly."""
