"""Shared test support: what several test modules and test-app task modules need, once."""
