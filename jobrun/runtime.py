"""What `jobrun start` and the CLI share: load the config, agree on the store, import tasks.

The service runs only the tasks registered by the modules named in `import`; modules are
looked up in the config file's folder first, then on sys.path. Nothing named by a job row is
ever imported.
"""

from __future__ import annotations

import importlib
import logging
import os
import sys
from dataclasses import dataclass

from .config import Settings, load, resolve_store
from .errors import ConfigError
from .registry import REGISTRY

log = logging.getLogger("jobrun")


def demo_config_path() -> str:
    from importlib import resources

    return str(resources.files("jobrun.demo").joinpath("jobrun.toml"))


@dataclass
class Runtime:
    settings: Settings
    store: str
    config: str | None
    warning: str | None = None  # a broken config set aside (`lenient`), for the user


def resolve(config: str | None, store: str | None, *, demo: bool = False,
            lenient: bool = False) -> Runtime:
    """Settings and store path; exports them so tasks modules' `App()` agree.

    With `lenient` and a store given (`--store` or $JOBRUN_STORE), a config that does not
    load is set aside with a warning: an operator command needs only the store, and a bad
    edit to the config must not lock the operator out of it."""
    if demo:
        config = demo_config_path()
    config = config or os.environ.get("JOBRUN_CONFIG") or None
    warning = None
    try:
        settings = load(config) if config else Settings()
    except ConfigError as exc:
        if not (lenient and (store or os.environ.get("JOBRUN_STORE"))):
            raise
        settings, warning = Settings(), f"warning: config ignored (the store is given): {exc}"
        config = None
    path = resolve_store(store, settings)
    os.environ["JOBRUN_STORE"] = path
    if config:
        os.environ["JOBRUN_CONFIG"] = os.path.abspath(config)
    return Runtime(settings, path, config, warning)


def import_tasks(settings: Settings) -> list[str]:
    """Import the `import` modules (config folder first); ConfigError names the failing one."""
    folder = settings.folder
    if settings.file and folder not in sys.path:
        sys.path.insert(0, folder)
    for name in settings.imports:
        try:
            importlib.import_module(name)
        except ImportError as exc:
            raise ConfigError(f"cannot import {name!r}: {exc}", file=settings.file,
                              key="jobrun.import") from exc
        except Exception as exc:  # a module that fails at import is a config problem here
            raise ConfigError(f"importing {name!r} failed: {type(exc).__name__}: {exc}",
                              file=settings.file, key="jobrun.import") from exc
    if settings.app:
        mod, _, attr = settings.app.partition(":")
        try:
            obj = getattr(importlib.import_module(mod), attr or "app")
        except (ImportError, AttributeError) as exc:
            raise ConfigError(f"cannot load app {settings.app!r}: {exc}", file=settings.file,
                              key="jobrun.app") from exc
        from .app import App

        if not isinstance(obj, App):
            raise ConfigError(f"{settings.app!r} is a {type(obj).__name__}, not a jobrun.App",
                              file=settings.file, key="jobrun.app")
    return REGISTRY.names()


def check_tasks(settings: Settings) -> list[ConfigError]:
    """Cron entries must name registered tasks (or TOML command tasks)."""
    problems = []
    for i, c in enumerate(settings.cron):
        if c.task and c.task not in REGISTRY and c.task not in settings.tasks:
            problems.append(ConfigError(
                f"cron {c.name!r}: task {c.task!r} is not registered after importing "
                f"{list(settings.imports)}", file=settings.file, key=f"cron.{i}.task"))
    return problems
