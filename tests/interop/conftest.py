"""Fixtures of the interop suite: the shared ones of tests/conftest.py, plus a swamp-shaped
datastore per (backend, layout)."""

from __future__ import annotations
