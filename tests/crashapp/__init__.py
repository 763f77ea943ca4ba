"""Task modules and process helpers for the real-process tests (crash, drain, fencing).

`crashapp.tasks` is imported by `jobrun start` subprocesses (tests/ is put on their
PYTHONPATH); `crashapp.harness` is used by the tests themselves.
"""
