"""Typed tasks and checked arguments: what a type checker reports, and what enqueue refuses.

`tests/typed/sample.py` holds correct uses (mypy --strict passes, and they run here);
`tests/typed/wrong.py` holds wrong ones, each marked with the mypy error code it must get."""

from __future__ import annotations

import inspect
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import jobrun
import jobrun.testing
from jobrun import validate

TYPED = Path(__file__).resolve().parent / "typed"
ROOT = TYPED.parent.parent


def rows(app: jobrun.App) -> int:
    return int(app.store.read("SELECT count(*) FROM jobs")[0][0])


# -- what mypy sees ---------------------------------------------------------------------------
def _mypy(*files: Path) -> tuple[int, list[str]]:
    r = subprocess.run([sys.executable, "-m", "mypy", "--strict", "--no-error-summary",
                        "--hide-error-context", "--show-error-codes",
                        *(str(f.relative_to(ROOT)) for f in files)],
                       cwd=ROOT, capture_output=True, text=True, timeout=240, check=False)
    return r.returncode, [ln for ln in (r.stdout + r.stderr).splitlines() if ln.strip()]


def test_typed_sample_passes_mypy_strict_and_wrong_uses_are_reported() -> None:
    sample, wrong = TYPED / "sample.py", TYPED / "wrong.py"
    # Given the marked lines of wrong.py, each with the error code mypy must report there
    expected: dict[int, str] = {}
    for n, line in enumerate(wrong.read_text(encoding="utf-8").splitlines(), 1):
        m = re.search(r"# E: ([a-z-]+)$", line)
        if m:
            expected[n] = m.group(1)
    assert len(expected) >= 8
    # When mypy --strict checks both files
    code, lines = _mypy(sample, wrong)
    # Then sample.py is clean and every wrong use is reported, with nothing else
    errors = [ln for ln in lines if ": error:" in ln]
    assert not [ln for ln in errors if "sample.py" in ln], "\n".join(lines)
    found: dict[int, set[str]] = {}
    for ln in errors:
        m = re.match(r".*wrong\.py:(\d+): error: .*\[([a-z-]+)\]$", ln)
        assert m, f"unexpected mypy output: {ln}"
        found.setdefault(int(m.group(1)), set()).add(m.group(2))
    for n, want in expected.items():
        assert want in found.get(n, set()), (n, want, "\n".join(lines))
    assert set(found) == set(expected), "\n".join(lines)
    assert code == 1
    # And the operand error names the task's return type, which only a typed Job carries
    assert any(re.search(r'wrong\.py:17: .*"int" and "str"', ln) for ln in errors), errors


def test_typed_sample_runs(store_path: str, monkeypatch: pytest.MonkeyPatch) -> None:
    from typed import sample

    monkeypatch.setenv("JOBRUN_STORE", store_path)  # sample.app = jobrun.App(): read on use
    try:
        with jobrun.testing.inline(sample.app):
            out = sample.use()
        assert out == [4, "REPORT-7.HTML", 3, None, [7, "report-8.pdf"], 11]
    finally:
        sample.app.close()


# -- arguments bound against the signature ------------------------------------------------------
@pytest.fixture
def add(app: jobrun.App) -> jobrun.Task[[int, int], int]:
    @app.task
    def add(a: int, b: int) -> int:
        return a + b
    return add


@pytest.mark.parametrize("args, kwargs, named", [
    ((1,), {}, r"missing a required argument: 'b'"),
    ((1, 2, 3), {}, r"too many positional arguments.*\b3\b"),
    ((1,), {"c": 2}, r"unexpected keyword argument 'c'"),
    ((1, 2), {"a": 2}, r"multiple values for argument 'a'"),
    ((), {"b": 2}, r"missing a required argument: 'a'"),
])
def test_wrong_arguments_are_refused_naming_them_and_store_nothing(
        app: jobrun.App, add: Any, args: tuple[Any, ...], kwargs: dict[str, Any],
        named: str) -> None:
    with pytest.raises(TypeError, match=named) as e1:
        add.enqueue(*args, **kwargs)
    assert add.name in str(e1.value)
    with pytest.raises(TypeError, match=named):
        add.options(priority=3).enqueue(*args, **kwargs)
    with pytest.raises(TypeError, match=named):
        app.enqueue(add.name, args=list(args), kwargs=kwargs)  # by name, registered here
    with pytest.raises(TypeError, match=named) as e2:
        app.enqueue_many([add.call(1, 2), add.call(*args, **kwargs)])  # all or none
    assert add.name in str(e2.value)
    assert rows(app) == 0
    add.enqueue(1, b=2)  # the right call still works
    assert rows(app) == 1


def test_binding_follows_every_kind_of_parameter(app: jobrun.App) -> None:
    @app.task
    def f(a: int, /, b: int, c: int = 0, *rest: int, d: int, e: int = 0, **more: int) -> int:
        return a + b + c + sum(rest) + d + e + sum(more.values())

    for args, kwargs in [((1, 2), {"d": 3}), ((1, 2, 3, 4, 5), {"d": 1, "x": 1}),
                         ((1,), {"b": 2, "d": 3, "a": 9})]:  # a: positional-only, so in **more
        f.enqueue(*args, **kwargs)
    for args, kwargs, named in [((1, 2), {}, "'d'"), ((1,), {"d": 1}, "'b'"),
                                ((), {"a": 1, "b": 2, "d": 3}, "'a'"),
                                ((1, 2), {"b": 2, "d": 3}, "'b'")]:
        with pytest.raises(TypeError, match=named):
            f.enqueue(*args, **kwargs)
    assert rows(app) == 3
    assert jobrun.testing.run_until_idle(app) == {"succeeded": 3}


def _sigs() -> list[Any]:
    def a(x: int, y: int = 0) -> None: ...
    def b(x: int, /, y: int, *, z: int, w: int = 0) -> None: ...
    def c(*args: int, **kwargs: int) -> None: ...
    def d(x: int, /, *rest: int, **more: int) -> None: ...
    def e(x: int = 0, /, y: int = 0, *, z: int = 0) -> None: ...
    def f() -> None: ...
    def g(x: int, y: int, /, z: int, *more: int, k: int) -> None: ...
    return [a, b, c, d, e, f, g]


@settings(max_examples=400, deadline=None)
@given(st.sampled_from(range(7)), st.integers(0, 5),
       st.dictionaries(st.sampled_from(["x", "y", "z", "w", "k", "q"]), st.just(1), max_size=4))
def test_binding_agrees_with_inspect_bind(which: int, n: int, kwargs: dict[str, int]) -> None:
    """The fast path accepts exactly what `Signature.bind` accepts, and the check refuses
    exactly what bind refuses."""
    fn = _sigs()[which]
    args = tuple(range(n))
    try:
        inspect.signature(fn).bind(*args, **kwargs)
        ok = True
    except TypeError:
        ok = False
    b = validate.Binder(inspect.signature(fn))
    assert b.fits(args, kwargs) == ok, (fn, args, kwargs)  # exact, so bind runs only on errors
    if ok:
        b.check("t", args, kwargs)
    else:
        with pytest.raises(TypeError, match=r"^t: "):
            b.check("t", args, kwargs)


def test_a_task_not_registered_here_is_not_bound(app: jobrun.App) -> None:
    app.enqueue("elsewhere.mod:fn", args=[1, 2, 3], kwargs={"anything": 1})
    assert rows(app) == 1


# -- payloads: dict keys must be str --------------------------------------------------------------
@pytest.mark.parametrize("where, value, path", [
    ("args", {1: "a"}, r"\[0\]"),
    ("args", [0, {"x": [{"ok": 1}, {None: 2}]}], r"\[0\]\[1\]\['x'\]\[1\]"),
    ("kwargs", {"v": {True: 1}}, r"\['v'\]"),
    ("kwargs", {"v": {1.5: 1}}, r"\['v'\]"),
    ("kwargs", {2: 1}, r"2"),
])
def test_non_string_dict_keys_are_refused_naming_key_and_path(app: jobrun.App, where: str,
                                                              value: Any, path: str) -> None:
    with pytest.raises(TypeError, match=path) as e:
        if where == "args":
            app.enqueue("t:x", args=[value])
        else:
            app.enqueue("t:x", kwargs=value)
    assert "key" in str(e.value) and "str" in str(e.value), str(e.value)
    assert rows(app) == 0


def test_string_keys_that_look_like_numbers_are_fine(app: jobrun.App) -> None:
    job = app.enqueue("t:x", args=[{"1": "a", "true": [{"null": None, "-2.5e3": 1}]}])
    assert app.store.get(job.id).args == [{"1": "a", "true": [{"null": None,  # type: ignore[union-attr]
                                                                 "-2.5e3": 1}]}]


def test_a_return_value_with_int_keys_is_dead_naming_the_key(app: jobrun.App) -> None:
    @app.task
    def counts() -> dict[int, int]:
        return {1: 2}

    job = counts.enqueue()
    jobrun.testing.run_until_idle(app)
    with pytest.raises(jobrun.JobFailed, match="key 1"):
        job.result(timeout=1)


# -- numeric options: no booleans, no strings -----------------------------------------------------
@pytest.mark.parametrize("option", ["priority", "max_attempts", "delay"])
@pytest.mark.parametrize("value", [True, False, "5", 1j, 2 ** 2000])
def test_enqueue_refuses_non_numbers_for_numeric_options(app: jobrun.App, add: Any,
                                                         option: str, value: Any) -> None:
    with pytest.raises(TypeError, match=option):
        add.options(**{option: value}).enqueue(1, 2)
    with pytest.raises(TypeError, match=option):
        app.enqueue(add.name, args=[1, 2], **{option: value})
    with pytest.raises(TypeError, match=option):
        app.enqueue_many([add.call(1, 2), add.options(**{option: value}).call(1, 2)])
    assert rows(app) == 0


@pytest.mark.parametrize("option, bad", [
    ("max_attempts", [True, 0, -1, 1.5, "3", 2 ** 31]),
    ("priority", [True, 1.5, "1", 2 ** 63, 2 ** 40, -(2 ** 31) - 1]),  # 32 bits: both stores
    ("timeout", [True, 0, -1, float("inf"), float("nan"), "60", 2 ** 2000]),
    ("retry_base", [True, -1, float("inf"), "1s"]),
    ("retry_cap", [False, -1, float("nan"), "1s"]),
])
def test_task_options_are_checked_at_the_decorator(app: jobrun.App, option: str,
                                                   bad: list[Any]) -> None:
    for value in bad:
        with pytest.raises(TypeError, match=option):
            @app.task(**{option: value})
            def f() -> None: ...
    assert not app.tasks


def test_key_concurrency_refuses_a_boolean(app: jobrun.App) -> None:
    with pytest.raises(TypeError, match="key_concurrency"):
        @app.task(concurrency_key="t:{t}", key_concurrency=True)
        def f(t: str) -> None: ...


def test_good_task_options_are_kept(app: jobrun.App) -> None:
    @app.task(max_attempts=2, timeout=1.5, priority=-3, retry_base=0.01, retry_cap=1)
    def f() -> None: ...

    rec = app.job(f.enqueue().id).record
    assert (rec.max_attempts, rec.timeout, rec.priority) == (2, 1.5, -3)
    assert rec.options == {"retry_base": 0.01, "retry_cap": 1}


# -- names and keys: printable, bounded (no forged log lines) ---------------------------------------
FORGED = "x:y\n2026-01-01 00:00:00 INFO job 1 other:task enqueued"


@pytest.mark.parametrize("bad", [FORGED, "a\rb", "a\x00b", "a\tb", "a\x1b[31mred", "a\x7fb",
                                 "a\x85b", "a\u2028b", "a\u2029b", "a\u202eb", "x" * 201])
def test_task_and_queue_names_must_be_printable_and_bounded(app: jobrun.App, bad: str) -> None:
    with pytest.raises(TypeError, match="task name") as e:
        app.enqueue(bad)
    assert "\n" not in str(e.value) and "\u2028" not in str(e.value)
    with pytest.raises(TypeError, match="queue"):
        app.enqueue("x:y", queue=bad)
    with pytest.raises(TypeError, match="task name"):
        app.enqueue_many([jobrun.Call("x:y"), jobrun.Call(bad)])
    with pytest.raises(TypeError, match="task name"):
        app.task(name=bad)(lambda: None)
    with pytest.raises(TypeError, match="queue"):
        app.task(queue=bad)(lambda: None)
    assert bad not in app.tasks and rows(app) == 0


@pytest.mark.parametrize("bad", ["k\n1", "k\u2029", "\x00", "k" * 1001])
def test_keys_must_be_printable_and_bounded(app: jobrun.App, add: Any, bad: str) -> None:
    with pytest.raises(TypeError, match="key"):
        add.options(key=bad).enqueue(1, 2)
    assert rows(app) == 0


def test_printable_unicode_names_and_long_keys_are_fine(app: jobrun.App, add: Any) -> None:
    app.enqueue("tâches:envoyer_café 📨", queue="émail")
    add.options(key="ключ 👩‍👩‍👧 " + "k" * 980).enqueue(1, 2)  # a ZWJ emoji is printable text
    app.enqueue("x" * 200, queue="q" * 200)
    assert rows(app) == 3
