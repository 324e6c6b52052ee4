"""Hypothesis settings of the property tests: bounded, derandomized (the same examples every run),
no example database (nothing written to the work tree)."""

from __future__ import annotations

from pathlib import Path

from hypothesis import HealthCheck, settings

from bridge.mappings import Mappings, load_mappings

REPO = Path(__file__).resolve().parents[2]

SHIPPED: Mappings = load_mappings(REPO / "mappings")
"""The shipped ``mappings/`` (what production classifies and maps with)."""

PROPERTY = settings(
    max_examples=300,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=[HealthCheck.too_slow],
)
"""Every property test's settings; a test may lower ``max_examples`` where one example is slow."""
