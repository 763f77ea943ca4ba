"""jobrun.toml -> typed settings. Every error names the file, the key (and line) and the reason.

`load(path)` raises the first problem; `check(path)` returns all of them (for `jobrun check`).
"""

from __future__ import annotations

import logging
import os
import re
from typing import Any

from .config_reader import Reader
from .cron import ScheduleError, parse_schedule
from .errors import ConfigError
from .limits import parse_rate
from .location import absolute, beside, foreign
from .settings import (
    BOUNDS,
    DEFAULT_CONCURRENCY,
    DEFAULT_QUEUE,
    EXECUTORS,
    CommandTask,
    CronEntry,
    QueueConfig,
    Settings,
    duration,
    human,
    parse_listen,
)

log = logging.getLogger("jobrun")

__all__ = ["BOUNDS", "DEFAULT_CONCURRENCY", "DEFAULT_QUEUE", "EXECUTORS", "CommandTask",
           "ConfigError", "CronEntry", "QueueConfig", "Settings", "check", "default_store",
           "duration", "env_config", "human", "load", "load_for_producer", "parse",
           "parse_listen", "resolve_store"]


MAX_CONCURRENCY = 10_000  # threads, children or tasks of one queue in one service
MAX_PREFETCH = 1_000_000  # held jobs of one queue (past it: a store round's LIMIT overflows)
_TOP = {"jobrun", "queues", "cron", "tasks", "metrics", "alerts", "ui"}
_JOBRUN = {"store", "shutdown_timeout", "durability", "import", "app", "lease", "poll",
           "record_delay", "misfire_grace",
           "retention", "dead_retention", "log_args", "log_format", "log_level"}
_QUEUE = {"concurrency", "executor", "max_attempts", "retry_base", "retry_cap", "timeout",
          "rate_limit", "max_tasks_per_child", "prefetch"}
_TASK = {"command", "queue", "timeout", "max_attempts", "env", "cwd", "shell"}
_CRON = {"name", "schedule", "every", "timezone", "task", "command", "args", "kwargs", "queue",
         "priority", "misfire"}


def parse(text: str, file: str = "<string>") -> tuple[Settings, list[ConfigError]]:
    """Settings and every problem found; Settings is only meaningful without problems."""
    import tomllib  # here: `jobrun ls --store X` reads no TOML

    r = Reader(file, text)
    try:
        doc = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        m = re.search(r"line (\d+)", str(exc))
        return Settings(file=file), [ConfigError(f"not valid TOML: {exc}", file=file,
                                                 line=int(m.group(1)) if m else None)]
    r.unknown(doc, (), _TOP)
    j = doc.get("jobrun", {})
    if not isinstance(j, dict):
        r.bad(("jobrun",), "must be a table")
        j = {}
    r.unknown(j, ("jobrun",), _JOBRUN)
    p = ("jobrun",)
    store = r.take(j, p, "store", str)
    if store is not None and not store.strip():
        r.bad(p + ("store",), "must be a file path, not empty")
        store = None
    if store is not None and foreign(store):
        r.bad(p + ("store",), f"{store!r}: {foreign(store)}")
        store = None
    store = beside(store, file)
    durability = r.take(j, p, "durability", str, "normal")
    if durability not in ("normal", "full"):
        r.bad(p + ("durability",), f"must be \"normal\" or \"full\", not {durability!r}")
        durability = "normal"
    imports = r.take(j, p, "import", list, [])
    for i, m in enumerate(imports):
        if not isinstance(m, str) or not re.fullmatch(r"[A-Za-z_][\w.]*", m):
            r.bad(p + ("import",), f"item {i} ({m!r}) is not a module name")
    settings: dict[str, Any] = {
        "file": file, "store": store, "durability": durability,
        "imports": tuple(x for x in imports if isinstance(x, str)),
        "app": r.take(j, p, "app", str),
        "shutdown_timeout": r.dur(j, p, "shutdown_timeout", 30.0),
        "lease": r.dur(j, p, "lease", 60.0), "poll": r.dur(j, p, "poll", 1.0),
        "record_delay": r.dur(j, p, "record_delay", 0.1),
        "misfire_grace": r.dur(j, p, "misfire_grace", 60.0),
        "retention": r.dur(j, p, "retention", 7 * 86400.0),
        "dead_retention": r.dur(j, p, "dead_retention", 30 * 86400.0),
        "log_args": r.take(j, p, "log_args", bool, False),
        "log_format": r.take(j, p, "log_format", str, "text"),
        "log_level": r.take(j, p, "log_level", str, "INFO").upper(),
    }
    if settings["log_format"] not in ("text", "json"):
        r.bad(p + ("log_format",), f"must be \"text\" or \"json\", not {settings['log_format']!r}")
        settings["log_format"] = "text"
    if settings["log_level"] not in ("DEBUG", "INFO", "WARNING", "ERROR"):
        r.bad(p + ("log_level",), "must be one of DEBUG, INFO, WARNING, ERROR")
        settings["log_level"] = "INFO"
    ui = doc.get("ui", {})
    if not isinstance(ui, dict):
        r.bad(("ui",), "must be a table")
        ui = {}
    r.unknown(ui, ("ui",), {"show_args"})
    settings["show_args"] = r.take(ui, ("ui",), "show_args", bool, True)
    settings["queues"] = _queues(r, doc.get("queues", {}))
    settings["tasks"] = _tasks(r, doc.get("tasks", {}))
    settings["cron"] = _crons(r, doc.get("cron", []))
    for name in ("metrics", "alerts"):
        t = doc.get(name, {})
        if not isinstance(t, dict):
            r.bad((name,), "must be a table")
            t = {}
        settings[name] = t
    r.unknown(settings["metrics"], ("metrics",), {"listen"})
    if "listen" in settings["metrics"]:
        try:
            parse_listen(settings["metrics"]["listen"])
        except ValueError as exc:
            r.bad(("metrics", "listen"), str(exc))
    from .ops.alerts import check_config as check_alerts

    for problem in check_alerts(settings["alerts"]):
        r.bad(("alerts",), problem)
    return Settings(**settings), r.problems


def _queues(r: Reader, table: Any) -> dict[str, QueueConfig]:
    out: dict[str, QueueConfig] = {}
    if not isinstance(table, dict):
        r.bad(("queues",), "must be a table of [queues.NAME] tables")
        return out
    for name, q in table.items():
        p = ("queues", name)
        if not isinstance(q, dict):
            r.bad(p, "must be a table")
            continue
        r.unknown(q, p, _QUEUE)
        conc = r.take(q, p, "concurrency", int, DEFAULT_CONCURRENCY)
        if not 1 <= conc <= MAX_CONCURRENCY:
            r.bad(p + ("concurrency",), f"must be at least 1, not {conc}" if conc < 1 else
                  f"must be at most {MAX_CONCURRENCY:,}, not {conc}")
            conc = DEFAULT_CONCURRENCY
        ex = r.take(q, p, "executor", str, "thread")
        if ex not in EXECUTORS:
            r.bad(p + ("executor",), f"must be one of {', '.join(EXECUTORS)}, not {ex!r}")
            ex = "thread"
        ma = r.take(q, p, "max_attempts", int)
        if ma is not None and ma < 1:
            r.bad(p + ("max_attempts",), f"must be at least 1, not {ma}")
            ma = None
        extra = {k: q[k] for k in ("rate_limit", "max_tasks_per_child") if k in q}
        if "rate_limit" in q:
            try:
                parse_rate(q["rate_limit"])
            except ValueError as exc:
                r.bad(p + ("rate_limit",), str(exc))
        mtpc = r.take(q, p, "max_tasks_per_child", int)
        if mtpc is not None and mtpc < 1:
            r.bad(p + ("max_tasks_per_child",), f"must be at least 1, not {mtpc}")
        prefetch = r.take(q, p, "prefetch", int)
        if prefetch is not None and not 0 <= prefetch <= MAX_PREFETCH:
            r.bad(p + ("prefetch",), f"must be 0 or more, not {prefetch}" if prefetch < 0 else
                  f"must be at most {MAX_PREFETCH:,}, not {prefetch}")
            prefetch = None
        base, cap = r.dur(q, p, "retry_base", None), r.dur(q, p, "retry_cap", None)
        if base is not None and cap is not None and cap < base:
            r.bad(p + ("retry_cap",), f"retry_cap ({human(cap)}) must be at least "
                                      f"retry_base ({human(base)})")
            cap = None
        out[name] = QueueConfig(name, conc, ex, ma, base, cap, r.dur(q, p, "timeout", None),
                                extra, prefetch)
    return out


def _tasks(r: Reader, table: Any) -> dict[str, CommandTask]:
    out: dict[str, CommandTask] = {}
    if not isinstance(table, dict):
        r.bad(("tasks",), "must be a table of [tasks.NAME] tables")
        return out
    for name, t in table.items():
        p = ("tasks", name)
        if not isinstance(t, dict):
            r.bad(p, "must be a table")
            continue
        r.unknown(t, p, _TASK)
        cmd = r.take(t, p, "command", list)
        if not cmd or not all(isinstance(c, str) for c in cmd):
            r.bad(p + ("command",), "must be a non-empty list of strings")
            cmd = ["false"]
        env = r.take(t, p, "env", dict, {})
        cwd = r.take(t, p, "cwd", str)
        if cwd and r.file != "<string>" and not os.path.isabs(os.path.expanduser(cwd)):
            cwd = os.path.join(os.path.dirname(os.path.abspath(r.file)), cwd)  # like store
        out[name] = CommandTask(name, tuple(cmd), r.take(t, p, "queue", str),
                                r.dur(t, p, "timeout", None), r.take(t, p, "max_attempts", int),
                                {str(k): str(v) for k, v in env.items()}, cwd,
                                r.take(t, p, "shell", bool, False))
    return out


def _crons(r: Reader, items: Any) -> tuple[CronEntry, ...]:
    out: list[CronEntry] = []
    if not isinstance(items, list):
        r.bad(("cron",), "must be an array of [[cron]] tables")
        return ()
    seen: set[str] = set()
    for i, c in enumerate(items):
        p = ("cron", str(i))
        if not isinstance(c, dict):
            r.bad(p, "must be a table")
            continue
        r.unknown(c, p, _CRON)
        name = r.take(c, p, "name", str)
        if not name:
            r.bad(p + ("name",), "every [[cron]] entry needs a name")
            name = f"#{i}"
        elif name in seen:
            r.bad(p + ("name",), f"duplicate cron name {name!r}")
        seen.add(name)
        sched = r.take(c, p, "schedule", str)
        every = r.dur(c, p, "every", None)
        if ("schedule" in c) == ("every" in c):  # a bad value is reported by itself
            r.bad(p + ("schedule",), f"cron {name!r} needs exactly one of schedule or every")
        tz = r.take(c, p, "timezone", str, "UTC")
        if sched is not None:
            try:
                parse_schedule(sched, tz)
            except ScheduleError as exc:
                key = "timezone" if "zone" in str(exc) else "schedule"
                r.bad(p + (key,), f"cron {name!r}: {exc}")
        task = r.take(c, p, "task", str)
        cmd = r.take(c, p, "command", list)
        if (task is None) == (cmd is None):
            r.bad(p + ("task",), f"cron {name!r} needs exactly one of task or command")
        misfire = r.take(c, p, "misfire", str, "skip")
        if misfire not in ("skip", "once"):
            r.bad(p + ("misfire",), f"must be \"skip\" or \"once\", not {misfire!r}")
        out.append(CronEntry(name, sched, every, tz, task,
                             tuple(cmd) if cmd else None, tuple(r.take(c, p, "args", list, [])),
                             r.take(c, p, "kwargs", dict, {}), r.take(c, p, "queue", str),
                             r.take(c, p, "priority", int), misfire))
    return tuple(out)


def check(path: str) -> tuple[Settings, list[ConfigError]]:
    """Read and validate a config file; returns all problems found."""
    try:
        with open(path, encoding="utf-8") as f:
            text = f.read()
    except OSError as exc:
        return Settings(file=path), [ConfigError(f"cannot read: {exc.strerror}", file=path)]
    except UnicodeDecodeError as exc:
        return Settings(file=path), [ConfigError(f"not UTF-8 text: {exc}", file=path)]
    return parse(text, path)


def load(path: str) -> Settings:
    """Settings from a file, or the first ConfigError (with file, key, line and reason)."""
    settings, problems = check(path)
    if problems:
        raise problems[0]
    return settings


_warned: set[str] = set()


def load_for_producer(path: str, *, store_known: bool = False) -> Settings:
    """Settings for a process that only enqueues (`App()` reading $JOBRUN_CONFIG).

    A bad edit must not stop a web app from importing its tasks module (the service keeps
    its running config through the same edit): what is valid is kept, a bad value is its
    default, and the problems are one warning per file per process. If the file is not even
    TOML, `store` under [jobrun] is found by a careful line scan. Only a store that cannot
    be known is a ConfigError (unless `store_known`: given or in $JOBRUN_STORE), since a
    guess would enqueue where no service looks. `load()` stays strict for services."""
    import tomllib

    from .tomlscan import find_store

    try:
        with open(path, "rb") as f:
            raw = f.read()
    except OSError as exc:
        raise ConfigError(f"cannot read: {exc.strerror}", file=path) from None
    try:
        text, problems = raw.decode("utf-8"), []
    except UnicodeDecodeError as exc:
        text = raw.decode("utf-8", errors="replace")
        problems = [ConfigError(f"not UTF-8 text: {exc}", file=path)]
    try:
        tomllib.loads(text)
    except tomllib.TOMLDecodeError:
        settings, more = parse(text, path)
        found = find_store(text)
        if found.doubt and not store_known:
            raise ConfigError(f"{more[0].reason}; and the store cannot be told from it: "
                              f"{found.doubt}", file=path, key="jobrun.store",
                              line=found.line) from None
        settings = Settings(file=path, store=beside(found.value, path))
    else:
        settings, more = parse(text, path)
        for p in more:
            if p.key in ("jobrun", "jobrun.store") and not store_known:
                raise p
    if "\ufffd" in (settings.store or "") and problems and not store_known:
        raise ConfigError(f"{problems[0].reason}: in the store's own path", file=path,
                          key="jobrun.store")
    problems = sorted(problems + more, key=lambda p: p.line or 0)  # the first in the file
    if problems and os.path.abspath(path) not in _warned:
        _warned.add(os.path.abspath(path))
        extra = f" (and {len(problems) - 1} more)" if len(problems) > 1 else ""
        log.warning("%s%s: enqueueing into store %s, the rest of the file is ignored here "
                    "until it is fixed (jobrun check --config %s)", problems[0], extra,
                    settings.store or "(none set in this file)", path)
    return settings


def env_config() -> str | None:
    return os.environ.get("JOBRUN_CONFIG") or None


def default_store() -> str:
    import platformdirs

    return os.path.join(platformdirs.user_data_dir("jobrun", appauthor=False), "jobs.db")


def resolve_store(explicit: str | None = None, settings: Settings | None = None) -> str:
    """Where the store is: explicit, $JOBRUN_STORE, the config's, else the user data dir.

    An explicit empty location (`--store ""`, `App("")`) is refused, not read as "unset": it
    would quietly mean the default store."""
    if explicit is not None and not explicit.strip():
        raise ConfigError(f"the store location is empty ({explicit!r}): give a SQLite file path "
                          "or a postgresql:// URL")
    if explicit:
        return absolute(explicit)
    env = os.environ.get("JOBRUN_STORE")
    if env:
        return absolute(env)
    if settings is None:
        cfg = env_config()
        if cfg and os.path.exists(cfg):
            settings = load_for_producer(cfg, store_known=bool(env))
    if settings is not None and settings.store:
        return absolute(settings.store)
    return default_store()
