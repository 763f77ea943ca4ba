-- Named queries of the PostgreSQL store (postgres.py), `-- name --` blocks, psycopg's
-- %(name)s parameters. The meaning of each is its namesake's in queries.sql.
-- An error history is appended to as text, never through jsonb: jsonb refuses a \u0000 that
-- JSON allows (a task's message may hold one), and a refused append would poison the round.

-- schema_init --
-- The schema_version table, if the database has none yet.
CREATE TABLE IF NOT EXISTS schema_version (version INTEGER NOT NULL);

-- schema_lock --
-- Openers move the schema forward one at a time.
SELECT pg_advisory_xact_lock(hashtext('jobrun:' || current_schema() || ':schema'));

-- schema_exists --
-- Whether this schema holds a jobrun store (its schema_version table).
SELECT to_regclass('schema_version') IS NOT NULL;

-- schema_get --
-- The store's schema version.
SELECT max(version) FROM schema_version;

-- schema_clear --
-- Forget the version row before writing the new one.
DELETE FROM schema_version;

-- schema_set --
-- The store's schema version after a migration.
INSERT INTO schema_version (version) VALUES (%(version)s);

-- snapshot_read --
-- A dashboard frame: one snapshot, so its numbers agree with each other.
SET TRANSACTION ISOLATION LEVEL REPEATABLE READ READ ONLY;

-- durability_full --
-- durability = "full": every commit waits for its WAL flush, whatever the server's default.
SET synchronous_commit = on;

-- read_only --
-- A store opened read-only: every transaction of its connections is.
SET default_transaction_read_only = on;

-- store_identity --
-- What tells one store from another: the server (its port and start time), the database
-- and the schema; a connection= is refused unless its answer is the store's own. Reads
-- nothing that could fail, so the caller's transaction is never aborted by the check.
SELECT current_setting('port'), pg_postmaster_start_time()::text, current_database(),
       current_schema();

-- find_active_key --
-- Keys are per task: the unfinished job of this task with this key, if any.
SELECT id FROM jobs
 WHERE task = %(task)s AND key = %(key)s
   AND state IN ('scheduled', 'queued', 'running', 'retrying');

-- insert_job --
-- A key held by an unfinished job of the task inserts nothing (the partial unique index). A
-- new row rings the services' doorbell (LISTEN/NOTIFY) when its transaction commits.
WITH ins AS (
INSERT INTO jobs (task, queue, args, kwargs, priority, state, max_attempts, run_at, key,
                  enqueued_at, trace_id, timeout, options, ckey)
VALUES (%(task)s, %(queue)s, %(args)s, %(kwargs)s, %(priority)s, %(state)s, %(max_attempts)s,
        %(run_at)s, %(key)s, %(now)s, %(trace_id)s, %(timeout)s, %(options)s, %(ckey)s)
    ON CONFLICT (task, key)
       WHERE key IS NOT NULL AND state IN ('scheduled', 'queued', 'running', 'retrying')
       DO NOTHING
RETURNING id)
SELECT id, pg_notify('jobrun:' || current_schema(), '') FROM ins;

-- insert_jobs --
-- A batch without keys in one statement: a column per array, rows in the order given (their
-- identity ids follow that order); rings the doorbell as insert_job does.
WITH ins AS (
INSERT INTO jobs (task, queue, args, kwargs, priority, state, max_attempts, run_at,
                  enqueued_at, trace_id, timeout, options, ckey)
SELECT task, queue, args, kwargs, priority, state, max_attempts, run_at, %(now)s, trace_id,
       timeout, options, ckey
  FROM unnest(%(task)s::text[], %(queue)s::text[], %(args)s::text[], %(kwargs)s::text[],
              %(priority)s::int[], %(state)s::text[], %(max_attempts)s::int[],
              %(run_at)s::float8[], %(trace_id)s::text[], %(timeout)s::float8[],
              %(options)s::text[], %(ckey)s::text[])
       WITH ORDINALITY AS n(task, queue, args, kwargs, priority, state, max_attempts, run_at,
                            trace_id, timeout, options, ckey, ord)
 ORDER BY ord
RETURNING id)
SELECT id, pg_notify('jobrun:' || current_schema(), '') FROM ins;

-- key_locks --
-- Enqueues of one (task, key) one at a time, so a lost race finds the winner's row: one lock
-- per bucket of key hashes (at most 128 locks however many keys, so the server's lock table,
-- max_locks_per_transaction, never runs out), taken in bucket order so two batches never
-- deadlock on each other.
SELECT count(pg_advisory_xact_lock(hashtext('jobrun:' || current_schema() || ':keys'), b))
  FROM (SELECT DISTINCT hashtext(t || ':' || k) & 127 AS b
          FROM unnest(%(tasks)s::text[], %(keys)s::text[]) AS u(t, k)
         ORDER BY b) AS buckets;

-- queue_lock --
-- Rounds that count running jobs or spend rate tokens in a queue, one at a time (the caps
-- and buckets hold across services and hosts).
SELECT pg_advisory_xact_lock(hashtext('jobrun:' || current_schema() || ':queue:' || %(queue)s));

-- queue_locks --
-- A round needing several queue locks takes them first, in name order: one taking a then b
-- and one taking b then a (or holding a's rate bucket while waiting for b) deadlocked.
SELECT count(pg_advisory_xact_lock(hashtext('jobrun:' || current_schema() || ':queue:' || q)))
  FROM (SELECT unnest(%(queues)s::text[]) AS q ORDER BY q) AS queues;

-- promote_due --
-- Scheduled and retrying jobs whose run_at has come become queued (jobs_waiting).
UPDATE jobs SET state = 'queued'
 WHERE id IN (SELECT id FROM jobs WHERE state IN ('scheduled', 'retrying')
                 AND run_at <= %(now)s FOR UPDATE SKIP LOCKED);

-- next_due --
-- The earliest run_at of a waiting job: how long an idle loop may sleep.
SELECT min(run_at) FROM jobs WHERE state IN ('scheduled', 'retrying');

-- paused_queues --
-- The queues paused now.
SELECT name FROM queues WHERE paused = 1;

-- acquire --
-- The best `limit` queued jobs of the queue, of `tasks` (NULL: any), that no other round
-- is claiming right now (SKIP LOCKED): rounds of many services never wait on each other.
-- Every time stamp is jobrun's clock (the writer's clock.now(), never the server's now());
-- a round's `now` can predate a job committed while the round waited on a lock, so a
-- start is never stamped before its job's enqueue (here, in acquire_ids, acquire_id and
-- began). Held (`held` true, claimed ahead of a free worker): the attempt is not counted
-- and started_at stays NULL until it starts (began), or until its outcome is recorded.
UPDATE jobs
   SET state = 'running', attempts = attempts + 1 - %(held)s::boolean::int, holder = %(holder)s,
       token = floor(random() * 9007199254740991)::bigint + 1,
       started_at = CASE WHEN %(held)s::boolean THEN NULL ELSE greatest(%(now)s, enqueued_at) END,
       lease_until = %(lease_until)s
 WHERE id IN (SELECT id FROM jobs WHERE state = 'queued' AND queue = %(queue)s
                 AND (%(tasks)s::text[] IS NULL OR task = ANY(%(tasks)s::text[]))
               ORDER BY priority DESC, id LIMIT %(limit)s FOR UPDATE SKIP LOCKED)
RETURNING id, task, queue, args, kwargs, attempts, max_attempts, token, trace_id, timeout,
          options, priority;

-- acquire_ids --
-- Acquire chosen queued jobs (the limited rounds pick them first). Never held: nothing is
-- claimed ahead of limits.
UPDATE jobs
   SET state = 'running', attempts = attempts + 1, holder = %(holder)s,
       token = floor(random() * 9007199254740991)::bigint + 1, started_at = greatest(%(now)s, enqueued_at),
       lease_until = %(lease_until)s
 WHERE id = ANY(%(ids)s::bigint[]) AND state = 'queued'
RETURNING id, task, queue, args, kwargs, attempts, max_attempts, token, trace_id, timeout,
          options, priority;

-- acquire_id --
-- Acquire one given waiting job whatever its run_at (inline mode).
UPDATE jobs
   SET state = 'running', attempts = attempts + 1, holder = %(holder)s,
       token = floor(random() * 9007199254740991)::bigint + 1, started_at = greatest(%(now)s, enqueued_at),
       lease_until = %(lease_until)s
 WHERE id = %(id)s AND state IN ('queued', 'scheduled', 'retrying')
RETURNING id, task, queue, args, kwargs, attempts, max_attempts, token, trace_id, timeout,
          options, priority;

-- running_in_queue --
-- Jobs running in a queue across every holder: the host-wide cap.
SELECT count(*) FROM jobs WHERE state = 'running' AND queue = %(queue)s;

-- ready_without_key --
-- Queued jobs of one task without a concurrency key, best first.
SELECT id, task, priority, ckey FROM jobs
 WHERE state = 'queued' AND queue = %(queue)s AND ckey IS NULL
   AND (%(tasks)s::text[] IS NULL OR task = ANY(%(tasks)s::text[]))
 ORDER BY priority DESC, id LIMIT %(limit)s;

-- ready_keys --
-- The concurrency keys with queued jobs in a queue (jobs_ckey_ready).
SELECT DISTINCT ckey FROM jobs
 WHERE state = 'queued' AND queue = %(queue)s AND ckey IS NOT NULL;

-- ready_of_key --
-- Queued jobs of one concurrency key, of the tasks this service runs (a JSON list).
SELECT id, task, priority, ckey FROM jobs
 WHERE state = 'queued' AND queue = %(queue)s AND ckey = %(ckey)s
   AND (%(tasks)s::text[] IS NULL OR task = ANY(%(tasks)s::text[]))
 ORDER BY priority DESC, id LIMIT %(limit)s;

-- running_by_key --
-- Running jobs per concurrency key (jobs_ckey_running).
SELECT ckey, count(*) FROM jobs WHERE state = 'running' AND ckey IS NOT NULL GROUP BY ckey;

-- get_bucket --
-- A rate-limit bucket: tokens left and when they were counted.
SELECT tokens, at FROM rate_buckets WHERE name = %(name)s;

-- get_bucket_locked --
-- A round's read of a bucket it may spend: locked to its commit (a key's bucket may be
-- spent by rounds of other queues, which hold other queue locks).
SELECT tokens, at FROM rate_buckets WHERE name = %(name)s FOR UPDATE;

-- put_bucket --
-- A rate-limit bucket after a round took tokens from it.
INSERT INTO rate_buckets (name, tokens, at) VALUES (%(name)s, %(tokens)s, %(at)s)
    ON CONFLICT (name) DO UPDATE SET tokens = excluded.tokens, at = excluded.at;

-- complete --
-- An attempt succeeded: recorded only while it still holds the job (its token).
-- A held attempt (started_at NULL) that ran and ended before `began` reached the store is
-- counted here (and in complete_many, fail).
UPDATE jobs
   SET state = 'succeeded', result = %(result)s, finished_at = %(now)s, holder = NULL,
       lease_until = NULL, attempts = attempts + (started_at IS NULL)::int,
       started_at = coalesce(started_at, %(now)s)
 WHERE id = %(id)s AND token = %(token)s AND state = 'running'
RETURNING id;

-- lock_ids --
-- Rows a batch is about to write, locked in id order first (no deadlocks with renewals and
-- rescues, which lock in that order too).
SELECT id FROM jobs WHERE id = ANY(%(ids)s::bigint[]) ORDER BY id FOR UPDATE;

-- complete_many --
-- A round's successes in one statement (the hot path): each only while its token holds.
UPDATE jobs AS j
   SET state = 'succeeded', result = o.result, finished_at = %(now)s, holder = NULL,
       lease_until = NULL, attempts = j.attempts + (j.started_at IS NULL)::int,
       started_at = coalesce(j.started_at, %(now)s)
  FROM unnest(%(ids)s::bigint[], %(tokens)s::bigint[], %(results)s::text[])
       AS o(id, token, result)
 WHERE j.id = o.id AND j.token = o.token AND j.state = 'running'
RETURNING j.id;

-- fail --
-- An attempt failed: retrying with its next run_at, or dead; fenced by the token.
UPDATE jobs
   SET state = %(state)s, run_at = %(run_at)s, finished_at = %(finished_at)s, holder = NULL,
       lease_until = NULL,
       errors = CASE WHEN errors = '[]' THEN '[' || %(error)s || ']'
                     ELSE left(errors, -1) || ', ' || %(error)s || ']' END,
       attempts = attempts + (started_at IS NULL)::int,
       started_at = coalesce(started_at, %(now)s)
 WHERE id = %(id)s AND token = %(token)s AND state = 'running'
RETURNING id;

-- release --
-- An attempt handed back unfinished (a drain): queued again, the attempt not counted (a
-- held one never was).
UPDATE jobs
   SET state = 'queued', holder = NULL, token = NULL,
       attempts = CASE WHEN started_at IS NULL THEN attempts ELSE greatest(attempts - 1, 0) END,
       lease_until = NULL, started_at = NULL
 WHERE id = %(id)s AND token = %(token)s AND state = 'running'
RETURNING id;

-- extend_holder --
-- Rows are locked in id order, as every multi-row write here does (no deadlocks between a
-- holder's renewals, its rounds and a rescue).
UPDATE jobs SET lease_until = %(lease_until)s
 WHERE id IN (SELECT id FROM jobs WHERE holder = %(holder)s AND state = 'running'
               ORDER BY id FOR UPDATE)
   AND holder = %(holder)s AND state = 'running';

-- extend_letting_go --
-- Renew the leases of a live holder's cancelled attempts still running (jobs_letting_go).
UPDATE jobs SET lease_until = %(lease_until)s
 WHERE id IN (SELECT id FROM jobs WHERE holder = %(holder)s AND state = 'cancelled'
               ORDER BY id FOR UPDATE)
   AND holder = %(holder)s AND state = 'cancelled';

-- let_go --
-- A cancelled attempt ended (its outcome fenced off): the job is its own again, retryable.
UPDATE jobs SET holder = NULL, token = NULL, lease_until = NULL
 WHERE id = %(id)s AND token = %(token)s AND state = 'cancelled' AND holder IS NOT NULL;

-- let_go_holder --
-- A dead holder's cancelled attempts ended with it.
UPDATE jobs SET holder = NULL, token = NULL, lease_until = NULL
 WHERE id IN (SELECT id FROM jobs WHERE holder = %(holder)s AND state = 'cancelled'
               ORDER BY id FOR UPDATE)
   AND holder = %(holder)s AND state = 'cancelled';

-- let_go_expired --
-- A cancelled attempt whose holder stopped renewing it (stuck): let go, as a lease rescue.
UPDATE jobs SET holder = NULL, token = NULL, lease_until = NULL
 WHERE id = %(id)s AND state = 'cancelled' AND holder IS NOT NULL AND lease_until < %(now)s;

-- extend_job --
-- Renew one attempt's lease (its heartbeat); nothing if the job is no longer its own.
UPDATE jobs SET lease_until = %(lease_until)s
 WHERE id = %(id)s AND token = %(token)s AND state = 'running'
RETURNING id;

-- began --
-- Held attempts that started: from now on they count (an outcome recorded first counts it
-- itself). The round locked their rows in id order first, with its outcomes' (lock_ids).
UPDATE jobs AS j SET attempts = j.attempts + 1, started_at = greatest(b.at, j.enqueued_at)
  FROM unnest(%(ids)s::bigint[], %(tokens)s::bigint[], %(ats)s::float8[]) AS b(id, token, at)
 WHERE j.id = b.id AND j.token = b.token AND j.state IN ('running', 'cancelled') AND j.started_at IS NULL;

-- running_holders --
-- The holders with running jobs, or cancelled attempts still running (their liveness locks
-- say which are dead).
SELECT DISTINCT holder FROM jobs WHERE state = 'running'
UNION SELECT holder FROM jobs WHERE state = 'cancelled' AND holder IS NOT NULL;

-- expired_leases --
-- Running jobs (and cancelled attempts still running) whose lease ran out: a holder alive
-- but stuck.
SELECT id, holder FROM (
  SELECT id, holder FROM jobs WHERE state = 'running' AND lease_until < %(now)s
  UNION ALL SELECT id, holder FROM jobs
   WHERE state = 'cancelled' AND holder IS NOT NULL AND lease_until < %(now)s) AS e
 ORDER BY id;

-- held_of_holder --
-- A dead holder's held jobs (claimed ahead, their start not recorded): its began log, where
-- it has one, says which of them began.
SELECT id, token FROM jobs WHERE holder = %(holder)s AND state = 'running' AND started_at IS NULL;

-- rescue_holder --
-- A dead holder's running jobs: queued again (attempt counted) or dead if spent. A held job
-- (started_at NULL) counts as begun, unless it is one of `unspent` (shown never to have
-- begun): that one goes back as it was, no attempt, no error.
UPDATE jobs
   SET state = CASE WHEN id = ANY(%(unspent)s::bigint[]) THEN 'queued'
                    WHEN attempts + (started_at IS NULL)::int >= max_attempts THEN 'dead'
                    ELSE 'queued' END,
       finished_at = CASE WHEN id = ANY(%(unspent)s::bigint[]) THEN NULL
                          WHEN attempts + (started_at IS NULL)::int >= max_attempts
                          THEN %(now)s ELSE NULL END,
       holder = NULL, token = NULL, lease_until = NULL,
       errors = CASE WHEN id = ANY(%(unspent)s::bigint[]) THEN errors
                     ELSE CASE WHEN errors = '[]' THEN '[' ELSE left(errors, -1) || ', ' END
                          || %(error_head)s || ', "attempt": '
                          || (attempts + (started_at IS NULL)::int) || '}]' END,
       attempts = attempts + (started_at IS NULL
                              AND NOT id = ANY(%(unspent)s::bigint[]))::int
 WHERE id IN (SELECT id FROM jobs WHERE holder = %(holder)s AND state = 'running'
               ORDER BY id FOR UPDATE)
   AND holder = %(holder)s AND state = 'running'
RETURNING id, task, queue, attempts, state, id = ANY(%(unspent)s::bigint[]);

-- rescue_job --
-- One job whose lease expired, taken back as rescue_holder does; a held one counts as
-- begun (its holder lives: it may begin it yet).
UPDATE jobs
   SET state = CASE WHEN attempts + (started_at IS NULL)::int >= max_attempts THEN 'dead'
                    ELSE 'queued' END,
       finished_at = CASE WHEN attempts + (started_at IS NULL)::int >= max_attempts
                          THEN %(now)s ELSE NULL END,
       holder = NULL, token = NULL, lease_until = NULL,
       errors = CASE WHEN errors = '[]' THEN '[' ELSE left(errors, -1) || ', ' END
                || %(error_head)s || ', "attempt": ' || (attempts + (started_at IS NULL)::int)
                || '}]',
       attempts = attempts + (started_at IS NULL)::int
 WHERE id = %(id)s AND state = 'running' AND lease_until < %(now)s
RETURNING id, task, queue, attempts, state, false;

-- attempt_states --
-- Whether attempts still hold their jobs (state and token of each).
SELECT id, state, token FROM jobs WHERE id = ANY(%(ids)s::bigint[]);

-- last_fire --
-- The latest due time fired for a cron entry.
SELECT max(fire_at) FROM cron_fires WHERE entry = %(entry)s;

-- insert_fire --
-- A cron fire's row: nothing (no row returned) if that due time fired already.
INSERT INTO cron_fires (entry, fire_at) VALUES (%(entry)s, %(fire_at)s)
    ON CONFLICT (entry, fire_at) DO NOTHING
RETURNING entry;

-- set_fire_job --
-- The job a cron fire made, written beside its fire row.
UPDATE cron_fires SET job_id = %(job_id)s WHERE entry = %(entry)s AND fire_at = %(fire_at)s;

-- catalog_forget_holder --
-- A holder's declarations, replaced by what it declares now.
DELETE FROM catalog WHERE holder = %(holder)s;

-- catalog_put --
-- One task a holder runs, with the JSON of a job's defaults.
INSERT INTO catalog (task, holder, options, seen_at)
VALUES (%(task)s, %(holder)s, %(options)s, %(now)s)
    ON CONFLICT (task, holder) DO UPDATE SET options = excluded.options,
                                             seen_at = excluded.seen_at;

-- catalog_touch --
-- A clean stop: the holder ran its tasks until now.
UPDATE catalog SET seen_at = %(now)s WHERE holder = %(holder)s;

-- catalog_all --
-- Every declaration, newest first per task.
SELECT task, holder, options, seen_at FROM catalog ORDER BY task, seen_at DESC, holder;

-- catalog_forget_old --
-- A dead holder's declarations older than :before.
DELETE FROM catalog WHERE holder = %(holder)s AND seen_at < %(before)s;

-- meta_get --
-- A store-wide fact (catalog_born).
SELECT value FROM meta WHERE name = %(name)s;

-- meta_init --
-- A store-wide fact, written once.
INSERT INTO meta (name, value) VALUES (%(name)s, %(value)s) ON CONFLICT (name) DO NOTHING;

-- queued_pairs --
-- Every (queue, task) with queued jobs.
SELECT DISTINCT queue, task FROM jobs WHERE state = 'queued' ORDER BY queue, task;

-- dead_unknown --
-- Queued jobs of a task nobody runs go dead (UnknownTask), a batch at a time.
UPDATE jobs
   SET state = 'dead', finished_at = %(now)s, holder = NULL, token = NULL,
       errors = CASE WHEN errors = '[]' THEN '[' || %(error)s || ']'
                     ELSE left(errors, -1) || ', ' || %(error)s || ']' END
 WHERE id IN (SELECT id FROM jobs WHERE state = 'queued' AND queue = %(queue)s
                 AND task = %(task)s ORDER BY id LIMIT %(limit)s FOR UPDATE SKIP LOCKED)
RETURNING id;

-- get_job --
-- One job, every column (JOB_COLUMNS in rows.py).
SELECT id, task, queue, args, kwargs, priority, state, attempts, max_attempts, run_at, key,
       result, errors, enqueued_at, started_at, finished_at, holder, token, lease_until,
       trace_id, timeout, options
  FROM jobs WHERE id = %(id)s;

-- job_status --
-- What Job.result() polls: state, attempts, result, errors.
SELECT state, attempts, result, errors FROM jobs WHERE id = %(id)s;

-- list_jobs --
-- Jobs newest first, by state and queue (JOB_COLUMNS in rows.py).
SELECT id, task, queue, args, kwargs, priority, state, attempts, max_attempts, run_at, key,
       result, errors, enqueued_at, started_at, finished_at, holder, token, lease_until,
       trace_id, timeout, options
  FROM jobs
 WHERE (%(state)s::text IS NULL OR state = %(state)s::text)
   AND (%(queue)s::text IS NULL OR queue = %(queue)s::text)
 ORDER BY id DESC LIMIT %(limit)s;

-- job_state --
-- One job's state (cancel reads it first).
SELECT state FROM jobs WHERE id = %(id)s FOR UPDATE;

-- cancel_waiting --
-- Cancel a job that is not running: at once.
UPDATE jobs SET state = 'cancelled', finished_at = %(now)s, holder = NULL, token = NULL
 WHERE id = %(id)s AND state IN ('scheduled', 'queued', 'retrying')
RETURNING id;

-- cancel_running --
-- Cancel a running job: its holder sees it no longer running and asks the attempt to stop.
-- Holder, token and lease stay ("letting go") until that attempt ends, its holder dies or
-- its lease runs out: a retry is refused meanwhile (the attempt may still run).
UPDATE jobs SET state = 'cancelled', finished_at = %(now)s
 WHERE id = %(id)s AND state = 'running'
RETURNING id;

-- retry_job --
-- A dead, cancelled or retrying job back to queued, unless its key is held again, or a
-- cancelled attempt of it, or of a workflow's child, still runs (its holder letting go:
-- the replay would find that child cancelled and fail).
UPDATE jobs
   SET state = 'queued', run_at = %(now)s, finished_at = NULL, holder = NULL, token = NULL,
       lease_until = NULL, attempts = CASE WHEN state = 'retrying' THEN attempts ELSE 0 END
 WHERE id = %(id)s AND state IN ('dead', 'cancelled', 'retrying') AND holder IS NULL
   AND NOT EXISTS (SELECT 1 FROM jobs AS c WHERE c.parent = jobs.id
                    AND c.state = 'cancelled' AND c.holder IS NOT NULL)
   AND (key IS NULL OR NOT EXISTS (
        SELECT 1 FROM jobs AS o WHERE o.task = jobs.task AND o.key = jobs.key
           AND o.id <> jobs.id AND o.state IN ('scheduled', 'queued', 'running', 'retrying')))
RETURNING id;

-- retry_dead --
-- Every dead job back to queued, but those whose key another unfinished job holds.
UPDATE jobs
   SET state = 'queued', run_at = %(now)s, finished_at = NULL, holder = NULL, token = NULL,
       attempts = 0
 WHERE state = 'dead'
   AND (key IS NULL OR NOT EXISTS (
        SELECT 1 FROM jobs AS o WHERE o.task = jobs.task AND o.key = jobs.key
           AND o.id <> jobs.id AND o.state IN ('scheduled', 'queued', 'running', 'retrying')))
RETURNING id;

-- prune_finished --
-- As on SQLite the newest job is kept (identity ids are never reused anyway).
DELETE FROM jobs WHERE id IN (
    SELECT id FROM jobs WHERE finished_at IS NOT NULL AND finished_at < %(before)s
       AND state = ANY(%(states)s::text[])
       AND id < (SELECT max(id) FROM jobs)
     LIMIT %(limit)s);

-- prune_job --
-- One finished job deleted by id, with prune_finished's rule (the newest job is kept).
DELETE FROM jobs WHERE id = %(id)s AND state IN ('succeeded', 'cancelled', 'dead')
   AND id < (SELECT max(id) FROM jobs);

-- set_concurrency --
-- A queue's live concurrency (NULL: back to the config's), kept beside its paused flag.
INSERT INTO queues (name, concurrency) VALUES (%(name)s, %(n)s)
    ON CONFLICT (name) DO UPDATE SET concurrency = excluded.concurrency;

-- queue_concurrency --
-- The queues given a live concurrency: a table of a few rows.
SELECT name, concurrency FROM queues WHERE concurrency IS NOT NULL;

-- set_paused --
-- Pause or resume a queue (its row is made on first use).
INSERT INTO queues (name, paused) VALUES (%(name)s, %(paused)s)
    ON CONFLICT (name) DO UPDATE SET paused = excluded.paused;

-- queue_names --
-- Queues paused or resumed once; the catalog's queues are read from its options in Python
-- (leniently: one malformed declaration must not hide the others).
SELECT name FROM queues;

-- catalog_options --
-- The declared options of every task (the queues their jobs go to).
SELECT options FROM catalog;

-- queue_counts --
-- Per queue and unfinished state, how many jobs.
SELECT queue, 'queued', count(*) FROM jobs WHERE state = 'queued' GROUP BY queue
UNION ALL
SELECT queue, 'running', count(*) FROM jobs WHERE state = 'running' GROUP BY queue
UNION ALL
SELECT queue, state, count(*) FROM jobs WHERE state IN ('scheduled', 'retrying')
 GROUP BY queue, state
UNION ALL
SELECT queue, 'dead', count(*) FROM jobs WHERE state = 'dead' GROUP BY queue;

-- oldest_queued --
-- Per queue, the run_at of its oldest queued job (jobs_ready).
SELECT queue, min(run_at) FROM jobs WHERE state = 'queued' GROUP BY queue;

-- finished_since --
-- Per queue, succeeded and dead jobs finished since :since (jobs_finished).
SELECT queue, state, count(*) FROM jobs
 WHERE finished_at >= %(since)s AND state IN ('succeeded', 'dead') GROUP BY queue, state;

-- pending --
-- Jobs that will still run: queued or running, or waiting due before :horizon.
SELECT count(*) FROM jobs WHERE state IN ('queued', 'running')
    OR (state IN ('scheduled', 'retrying') AND run_at <= %(horizon)s);

-- state_counts --
-- Jobs per state (jobrun.testing.counts).
SELECT state, count(*) FROM jobs GROUP BY state;

-- explain_running --
-- Jobs running in the job's queue (jobrun explain).
SELECT count(*) FROM jobs WHERE state = 'running' AND queue = %(queue)s;

-- explain_ahead --
-- Queued jobs of the queue that go first: higher priority, or as high and older.
SELECT count(*) FROM jobs WHERE state = 'queued' AND queue = %(queue)s
   AND (priority > %(priority)s OR (priority = %(priority)s AND id < %(id)s));

-- explain_key --
-- The job's concurrency key (jobrun explain).
SELECT ckey FROM jobs WHERE id = %(id)s;

-- explain_key_running --
-- Jobs of that key running now (jobrun explain).
SELECT count(*) FROM jobs WHERE state = 'running' AND ckey = %(ckey)s;

-- lock_try --
-- A session-level advisory lock (liveness of a holder, cron leadership): held for as long as
-- the connection that took it lives, so every other host sees at once when it dies.
SELECT pg_try_advisory_lock(hashtext('jobrun:' || current_schema() || ':' || %(kind)s),
                            hashtext(%(name)s));

-- lock_free --
-- Whether an advisory lock is free (a holder's liveness seen from another host).
SELECT pg_advisory_unlock(hashtext('jobrun:' || current_schema() || ':' || %(kind)s),
                          hashtext(%(name)s));

-- lock_held --
-- Whether some session holds the lock: taken and given back at once if nobody does.
SELECT CASE WHEN pg_try_advisory_lock(hashtext('jobrun:' || current_schema() || ':' || %(kind)s),
                                      hashtext(%(name)s))
            THEN NOT pg_advisory_unlock(hashtext('jobrun:' || current_schema() || ':' || %(kind)s),
                                        hashtext(%(name)s))
            ELSE true END;

-- notify --
-- Wake every listening service of this store (delivered when the transaction commits; a
-- rollback wakes nobody).
SELECT pg_notify('jobrun:' || current_schema(), '');

-- bell_channel --
-- The channel the services of this store listen on: one per schema.
SELECT 'jobrun:' || current_schema();

-- listen --
-- A service's doorbell: {channel} is bell_channel's answer, quoted as an identifier.
LISTEN {channel};

-- holder_put --
-- What a live service says about itself (host, pid, queues, started), read by the others.
INSERT INTO meta (name, value) VALUES ('holder:' || %(holder)s, %(info)s)
ON CONFLICT (name) DO UPDATE SET value = excluded.value;

-- holder_get --
-- What one service said about itself.
SELECT value FROM meta WHERE name = 'holder:' || %(holder)s;

-- holders_list --
-- The services that said they serve (their liveness locks say which still do).
SELECT substr(name, 8) FROM meta WHERE name LIKE 'holder:%%' ORDER BY name;

-- holder_forget --
-- A dead service's record, removed by a sweep (or by itself on its way out).
DELETE FROM meta WHERE name = 'holder:' || %(holder)s;

-- leader_put --
-- Who leads the cron now, for readers (the advisory lock is what counts).
INSERT INTO meta (name, value) VALUES ('leader', %(holder)s)
ON CONFLICT (name) DO UPDATE SET value = excluded.value;

-- leader_get --
-- Who said it leads the cron.
SELECT value FROM meta WHERE name = 'leader';
