"""The nightly cleanup that `jobrun.toml` schedules with `[[cron]]`.

`purge_old_files(folder, older_than_days)` deletes regular files under `folder` whose last
modification is older than that, and empty folders left behind (never `folder` itself).
Symlinks are not followed. It returns what it did, which `jobrun show ID` displays.
"""

from __future__ import annotations

import os
import time
from typing import Any

import jobrun

app = jobrun.App()


@app.task(queue="maintenance", max_attempts=3)
def purge_old_files(folder: str, older_than_days: float = 14) -> dict[str, Any]:
    if not os.path.isdir(folder):
        raise jobrun.Permanent(f"{folder} is not a folder")
    cutoff = time.time() - older_than_days * 86400
    removed = kept = 0
    freed = 0
    for root, _dirs, files in os.walk(folder, topdown=False):
        for name in files:
            path = os.path.join(root, name)
            try:
                st = os.lstat(path)
                if st.st_mtime < cutoff:
                    os.unlink(path)
                    removed += 1
                    freed += st.st_size
                else:
                    kept += 1
            except FileNotFoundError:
                continue  # gone meanwhile
        if root != folder:
            try:
                os.rmdir(root)  # only succeeds when empty
            except OSError:
                pass
    return {"folder": folder, "removed": removed, "kept": kept, "bytes_freed": freed}
