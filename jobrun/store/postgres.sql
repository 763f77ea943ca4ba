-- Named queries of the PostgreSQL store (postgres.py), `-- name --` blocks, psycopg's
-- %(name)s parameters. The meaning of each is its namesake's in queries.sql.
-- An error history is appended to as text, never through jsonb: jsonb refuses a \u0000 that
-- JSON allows (a task's message may hold one), and a refused append would poison the round.

-- schema_init --
CREATE TABLE IF NOT EXISTS schema_version (version INTEGER NOT NULL);

-- schema_lock --
-- Openers move the schema forward one at a time.
SELECT pg_advisory_xact_lock(hashtext('jobrun:' || current_schema() || ':schema'));

-- schema_exists --
SELECT to_regclass('schema_version') IS NOT NULL;

-- schema_get --
SELECT max(version) FROM schema_version;

-- schema_clear --
DELETE FROM schema_version;

-- schema_set --
INSERT INTO schema_version (version) VALUES (%(version)s);

-- durability_full --
-- durability = "full": every commit waits for its WAL flush, whatever the server's default.
SET synchronous_commit = on;

-- read_only --
-- A store opened read-only: every transaction of its connections is.
SET default_transaction_read_only = on;

-- find_active_key --
SELECT id FROM jobs
 WHERE task = %(task)s AND key = %(key)s
   AND state IN ('scheduled', 'queued', 'running', 'retrying');

-- insert_job --
-- A key held by an unfinished job of the task inserts nothing (the partial unique index).
INSERT INTO jobs (task, queue, args, kwargs, priority, state, max_attempts, run_at, key,
                  enqueued_at, trace_id, timeout, options, ckey)
VALUES (%(task)s, %(queue)s, %(args)s, %(kwargs)s, %(priority)s, %(state)s, %(max_attempts)s,
        %(run_at)s, %(key)s, %(now)s, %(trace_id)s, %(timeout)s, %(options)s, %(ckey)s)
    ON CONFLICT (task, key)
       WHERE key IS NOT NULL AND state IN ('scheduled', 'queued', 'running', 'retrying')
       DO NOTHING
RETURNING id;

-- insert_jobs --
-- A batch without keys in one statement: a column per array, rows in the order given (their
-- identity ids follow that order).
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
RETURNING id;

-- key_lock --
-- Enqueues of one (task, key) one at a time, so a lost race finds the winner's row.
SELECT pg_advisory_xact_lock(hashtext('jobrun:' || current_schema() || ':key:' || %(task)s),
                             hashtext(%(key)s));

-- queue_lock --
-- Rounds that count running jobs or spend rate tokens in a queue, one at a time (the caps
-- and buckets hold across services and hosts).
SELECT pg_advisory_xact_lock(hashtext('jobrun:' || current_schema() || ':queue:' || %(queue)s));

-- promote_due --
UPDATE jobs SET state = 'queued'
 WHERE id IN (SELECT id FROM jobs WHERE state IN ('scheduled', 'retrying')
                 AND run_at <= %(now)s FOR UPDATE SKIP LOCKED);

-- next_due --
SELECT min(run_at) FROM jobs WHERE state IN ('scheduled', 'retrying');

-- paused_queues --
SELECT name FROM queues WHERE paused = 1;

-- acquire --
-- The best `limit` queued jobs of the queue, of `tasks` (NULL: any), that no other round
-- is claiming right now (SKIP LOCKED): rounds of many services never wait on each other.
UPDATE jobs
   SET state = 'running', attempts = attempts + 1, holder = %(holder)s,
       token = floor(random() * 9007199254740991)::bigint + 1, started_at = %(now)s,
       lease_until = %(lease_until)s
 WHERE id IN (SELECT id FROM jobs WHERE state = 'queued' AND queue = %(queue)s
                 AND (%(tasks)s::text[] IS NULL OR task = ANY(%(tasks)s::text[]))
               ORDER BY priority DESC, id LIMIT %(limit)s FOR UPDATE SKIP LOCKED)
RETURNING id, task, queue, args, kwargs, attempts, max_attempts, token, trace_id, timeout,
          options, priority;

-- acquire_ids --
UPDATE jobs
   SET state = 'running', attempts = attempts + 1, holder = %(holder)s,
       token = floor(random() * 9007199254740991)::bigint + 1, started_at = %(now)s,
       lease_until = %(lease_until)s
 WHERE id = ANY(%(ids)s::bigint[]) AND state = 'queued'
RETURNING id, task, queue, args, kwargs, attempts, max_attempts, token, trace_id, timeout,
          options, priority;

-- acquire_id --
UPDATE jobs
   SET state = 'running', attempts = attempts + 1, holder = %(holder)s,
       token = floor(random() * 9007199254740991)::bigint + 1, started_at = %(now)s,
       lease_until = %(lease_until)s
 WHERE id = %(id)s AND state IN ('queued', 'scheduled', 'retrying')
RETURNING id, task, queue, args, kwargs, attempts, max_attempts, token, trace_id, timeout,
          options, priority;

-- running_in_queue --
SELECT count(*) FROM jobs WHERE state = 'running' AND queue = %(queue)s;

-- ready_without_key --
SELECT id, task, priority, ckey FROM jobs
 WHERE state = 'queued' AND queue = %(queue)s AND ckey IS NULL
   AND (%(tasks)s::text[] IS NULL OR task = ANY(%(tasks)s::text[]))
 ORDER BY priority DESC, id LIMIT %(limit)s;

-- ready_keys --
SELECT DISTINCT ckey FROM jobs
 WHERE state = 'queued' AND queue = %(queue)s AND ckey IS NOT NULL;

-- ready_of_key --
SELECT id, task, priority, ckey FROM jobs
 WHERE state = 'queued' AND queue = %(queue)s AND ckey = %(ckey)s
   AND (%(tasks)s::text[] IS NULL OR task = ANY(%(tasks)s::text[]))
 ORDER BY priority DESC, id LIMIT %(limit)s;

-- running_by_key --
SELECT ckey, count(*) FROM jobs WHERE state = 'running' AND ckey IS NOT NULL GROUP BY ckey;

-- get_bucket --
SELECT tokens, at FROM rate_buckets WHERE name = %(name)s;

-- get_bucket_locked --
-- A round's read of a bucket it may spend: locked to its commit (a key's bucket may be
-- spent by rounds of other queues, which hold other queue locks).
SELECT tokens, at FROM rate_buckets WHERE name = %(name)s FOR UPDATE;

-- put_bucket --
INSERT INTO rate_buckets (name, tokens, at) VALUES (%(name)s, %(tokens)s, %(at)s)
    ON CONFLICT (name) DO UPDATE SET tokens = excluded.tokens, at = excluded.at;

-- complete --
UPDATE jobs
   SET state = 'succeeded', result = %(result)s, finished_at = %(now)s, holder = NULL,
       lease_until = NULL
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
       lease_until = NULL
  FROM unnest(%(ids)s::bigint[], %(tokens)s::bigint[], %(results)s::text[])
       AS o(id, token, result)
 WHERE j.id = o.id AND j.token = o.token AND j.state = 'running'
RETURNING j.id;

-- fail --
UPDATE jobs
   SET state = %(state)s, run_at = %(run_at)s, finished_at = %(finished_at)s, holder = NULL,
       lease_until = NULL,
       errors = CASE WHEN errors = '[]' THEN '[' || %(error)s || ']'
                     ELSE left(errors, -1) || ', ' || %(error)s || ']' END
 WHERE id = %(id)s AND token = %(token)s AND state = 'running'
RETURNING id;

-- release --
UPDATE jobs
   SET state = 'queued', attempts = greatest(attempts - 1, 0), holder = NULL, token = NULL,
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

-- extend_job --
UPDATE jobs SET lease_until = %(lease_until)s
 WHERE id = %(id)s AND token = %(token)s AND state = 'running'
RETURNING id;

-- running_holders --
SELECT DISTINCT holder FROM jobs WHERE state = 'running';

-- expired_leases --
SELECT id, holder FROM jobs WHERE state = 'running' AND lease_until < %(now)s ORDER BY id;

-- rescue_holder --
UPDATE jobs
   SET state = CASE WHEN attempts >= max_attempts THEN 'dead' ELSE 'queued' END,
       finished_at = CASE WHEN attempts >= max_attempts THEN %(now)s ELSE NULL END,
       holder = NULL, token = NULL, lease_until = NULL,
       errors = CASE WHEN errors = '[]' THEN '[' ELSE left(errors, -1) || ', ' END
                || %(error_head)s || ', "attempt": ' || attempts || '}]'
 WHERE id IN (SELECT id FROM jobs WHERE holder = %(holder)s AND state = 'running'
               ORDER BY id FOR UPDATE)
   AND holder = %(holder)s AND state = 'running'
RETURNING id, task, queue, attempts, state;

-- rescue_job --
UPDATE jobs
   SET state = CASE WHEN attempts >= max_attempts THEN 'dead' ELSE 'queued' END,
       finished_at = CASE WHEN attempts >= max_attempts THEN %(now)s ELSE NULL END,
       holder = NULL, token = NULL, lease_until = NULL,
       errors = CASE WHEN errors = '[]' THEN '[' ELSE left(errors, -1) || ', ' END
                || %(error_head)s || ', "attempt": ' || attempts || '}]'
 WHERE id = %(id)s AND state = 'running' AND lease_until < %(now)s
RETURNING id, task, queue, attempts, state;

-- attempt_states --
SELECT id, state, token FROM jobs WHERE id = ANY(%(ids)s::bigint[]);

-- last_fire --
SELECT max(fire_at) FROM cron_fires WHERE entry = %(entry)s;

-- insert_fire --
INSERT INTO cron_fires (entry, fire_at) VALUES (%(entry)s, %(fire_at)s)
    ON CONFLICT (entry, fire_at) DO NOTHING
RETURNING entry;

-- set_fire_job --
UPDATE cron_fires SET job_id = %(job_id)s WHERE entry = %(entry)s AND fire_at = %(fire_at)s;

-- catalog_forget_holder --
DELETE FROM catalog WHERE holder = %(holder)s;

-- catalog_put --
INSERT INTO catalog (task, holder, options, seen_at)
VALUES (%(task)s, %(holder)s, %(options)s, %(now)s)
    ON CONFLICT (task, holder) DO UPDATE SET options = excluded.options,
                                             seen_at = excluded.seen_at;

-- catalog_touch --
UPDATE catalog SET seen_at = %(now)s WHERE holder = %(holder)s;

-- catalog_all --
SELECT task, holder, options, seen_at FROM catalog ORDER BY task, seen_at DESC, holder;

-- catalog_forget_old --
DELETE FROM catalog WHERE holder = %(holder)s AND seen_at < %(before)s;

-- meta_get --
SELECT value FROM meta WHERE name = %(name)s;

-- meta_init --
INSERT INTO meta (name, value) VALUES (%(name)s, %(value)s) ON CONFLICT (name) DO NOTHING;

-- queued_pairs --
SELECT DISTINCT queue, task FROM jobs WHERE state = 'queued' ORDER BY queue, task;

-- dead_unknown --
UPDATE jobs
   SET state = 'dead', finished_at = %(now)s, holder = NULL, token = NULL,
       errors = CASE WHEN errors = '[]' THEN '[' || %(error)s || ']'
                     ELSE left(errors, -1) || ', ' || %(error)s || ']' END
 WHERE id IN (SELECT id FROM jobs WHERE state = 'queued' AND queue = %(queue)s
                 AND task = %(task)s ORDER BY id LIMIT %(limit)s FOR UPDATE SKIP LOCKED)
RETURNING id;

-- get_job --
SELECT id, task, queue, args, kwargs, priority, state, attempts, max_attempts, run_at, key,
       result, errors, enqueued_at, started_at, finished_at, holder, token, lease_until,
       trace_id, timeout, options
  FROM jobs WHERE id = %(id)s;

-- job_status --
SELECT state, attempts, result, errors FROM jobs WHERE id = %(id)s;

-- list_jobs --
SELECT id, task, queue, args, kwargs, priority, state, attempts, max_attempts, run_at, key,
       result, errors, enqueued_at, started_at, finished_at, holder, token, lease_until,
       trace_id, timeout, options
  FROM jobs
 WHERE (%(state)s::text IS NULL OR state = %(state)s::text)
   AND (%(queue)s::text IS NULL OR queue = %(queue)s::text)
 ORDER BY id DESC LIMIT %(limit)s;

-- job_state --
SELECT state FROM jobs WHERE id = %(id)s FOR UPDATE;

-- cancel_waiting --
UPDATE jobs SET state = 'cancelled', finished_at = %(now)s, holder = NULL, token = NULL
 WHERE id = %(id)s AND state IN ('scheduled', 'queued', 'retrying')
RETURNING id;

-- cancel_running --
UPDATE jobs SET state = 'cancelled', finished_at = %(now)s, holder = NULL, token = NULL,
       lease_until = NULL
 WHERE id = %(id)s AND state = 'running'
RETURNING id;

-- retry_job --
UPDATE jobs
   SET state = 'queued', run_at = %(now)s, finished_at = NULL, holder = NULL, token = NULL,
       attempts = CASE WHEN state = 'retrying' THEN attempts ELSE 0 END
 WHERE id = %(id)s AND state IN ('dead', 'cancelled', 'retrying')
   AND (key IS NULL OR NOT EXISTS (
        SELECT 1 FROM jobs AS o WHERE o.task = jobs.task AND o.key = jobs.key
           AND o.id <> jobs.id AND o.state IN ('scheduled', 'queued', 'running', 'retrying')))
RETURNING id;

-- retry_dead --
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

-- set_paused --
INSERT INTO queues (name, paused) VALUES (%(name)s, %(paused)s)
    ON CONFLICT (name) DO UPDATE SET paused = excluded.paused;

-- queue_names --
-- Queues paused or resumed once; the catalog's queues are read from its options in Python
-- (leniently: one malformed declaration must not hide the others).
SELECT name FROM queues;

-- catalog_options --
SELECT options FROM catalog;

-- queue_counts --
SELECT queue, 'queued', count(*) FROM jobs WHERE state = 'queued' GROUP BY queue
UNION ALL
SELECT queue, 'running', count(*) FROM jobs WHERE state = 'running' GROUP BY queue
UNION ALL
SELECT queue, state, count(*) FROM jobs WHERE state IN ('scheduled', 'retrying')
 GROUP BY queue, state
UNION ALL
SELECT queue, 'dead', count(*) FROM jobs WHERE state = 'dead' GROUP BY queue;

-- oldest_queued --
SELECT queue, min(run_at) FROM jobs WHERE state = 'queued' GROUP BY queue;

-- finished_since --
SELECT queue, state, count(*) FROM jobs
 WHERE finished_at >= %(since)s AND state IN ('succeeded', 'dead') GROUP BY queue, state;

-- pending --
SELECT count(*) FROM jobs WHERE state IN ('queued', 'running')
    OR (state IN ('scheduled', 'retrying') AND run_at <= %(horizon)s);

-- state_counts --
SELECT state, count(*) FROM jobs GROUP BY state;

-- explain_running --
SELECT count(*) FROM jobs WHERE state = 'running' AND queue = %(queue)s;

-- explain_ahead --
SELECT count(*) FROM jobs WHERE state = 'queued' AND queue = %(queue)s
   AND (priority > %(priority)s OR (priority = %(priority)s AND id < %(id)s));

-- explain_key --
SELECT ckey FROM jobs WHERE id = %(id)s;

-- explain_key_running --
SELECT count(*) FROM jobs WHERE state = 'running' AND ckey = %(ckey)s;

-- lock_try --
-- A session-level advisory lock (liveness of a holder, cron leadership): held for as long as
-- the connection that took it lives, so every other host sees at once when it dies.
SELECT pg_try_advisory_lock(hashtext('jobrun:' || current_schema() || ':' || %(kind)s),
                            hashtext(%(name)s));

-- lock_free --
SELECT pg_advisory_unlock(hashtext('jobrun:' || current_schema() || ':' || %(kind)s),
                          hashtext(%(name)s));

-- lock_held --
-- Whether some session holds the lock: taken and given back at once if nobody does.
SELECT CASE WHEN pg_try_advisory_lock(hashtext('jobrun:' || current_schema() || ':' || %(kind)s),
                                      hashtext(%(name)s))
            THEN NOT pg_advisory_unlock(hashtext('jobrun:' || current_schema() || ':' || %(kind)s),
                                        hashtext(%(name)s))
            ELSE true END;
