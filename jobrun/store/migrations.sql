-- Steps after schema.sql (version 1). Block `-- vN --` takes a store from N-1 to N.

-- v2 --
-- Limits and fairness: a concurrency key per job, rate-limit buckets shared by all services.
-- Fewer index writes per state change: every job passes queued -> running -> finished, so
-- only small partial indexes follow it (the (state, id) index touched every change is gone).
ALTER TABLE jobs ADD COLUMN ckey TEXT;
DROP INDEX IF EXISTS jobs_state;
DROP INDEX IF EXISTS jobs_running;
CREATE INDEX jobs_running ON jobs (queue, holder) WHERE state = 'running';
CREATE INDEX jobs_dead ON jobs (queue, finished_at) WHERE state = 'dead';
CREATE INDEX jobs_ckey_ready ON jobs (queue, ckey, priority DESC, id)
    WHERE state = 'queued' AND ckey IS NOT NULL;
CREATE INDEX jobs_ckey_running ON jobs (ckey) WHERE state = 'running' AND ckey IS NOT NULL;
CREATE TABLE rate_buckets (
    name   TEXT PRIMARY KEY,   -- queue:NAME, task:NAME or key:KEY
    tokens REAL NOT NULL,
    at     REAL NOT NULL
);

-- v3 --
-- jobrun.once: an attempt performing an operation holds a pending row (its owner is the
-- attempt: job id and fencing token), so a concurrent attempt waits instead of repeating it.
ALTER TABLE processed_operations ADD COLUMN state TEXT NOT NULL DEFAULT 'done';
ALTER TABLE processed_operations ADD COLUMN owner TEXT;
