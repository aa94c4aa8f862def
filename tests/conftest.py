"""Tests import helpers from tests/support.py."""
