"""Task modules for the executor and limit tests (test_executors.py, test_limits.py).

`execapp.tasks` is importable by the test process (tests/ is on sys.path), by the process
executor's children (they get the parent's sys.path) and by `jobrun start` subprocesses
(the harness puts tests/ on their PYTHONPATH).
"""
