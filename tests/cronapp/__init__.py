"""Task modules for the real-process cron, leadership and reload tests.

`cronapp.tasks` is imported by `jobrun start` subprocesses (tests/ is put on their
PYTHONPATH by `crashapp.harness.ServiceProc`).
"""
