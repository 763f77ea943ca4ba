"""Typed samples: `sample.py` must pass `mypy --strict`; each line of `wrong.py` marked
`# E: CODE` must be reported with that error code (tests/test_typed.py runs mypy on both)."""
