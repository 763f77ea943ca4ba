-- Named queries, loaded into a dict by queries.py. Blocks start with `-- name --`.

-- find_active_key --
-- Keys are per task: the unfinished job of this task with this key, if any.
SELECT id FROM jobs
 WHERE task = :task AND key = :key AND state IN ('scheduled', 'queued', 'running', 'retrying');

-- insert_job --
-- A new job row (one with a key: after find_active_key found no unfinished twin).
INSERT INTO jobs (task, queue, args, kwargs, priority, state, max_attempts, run_at, key,
                  enqueued_at, trace_id, timeout, options, ckey)
VALUES (:task, :queue, :args, :kwargs, :priority, :state, :max_attempts, :run_at, :key,
        :now, :trace_id, :timeout, :options, :ckey)
RETURNING id;

-- insert_job_plain --
-- A batch of new jobs without keys (enqueue_many: one executemany).
INSERT INTO jobs (task, queue, args, kwargs, priority, state, max_attempts, run_at,
                  enqueued_at, trace_id, timeout, options, ckey)
VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?);

-- promote_due --
-- Scheduled and retrying jobs whose run_at has come become queued (jobs_waiting).
UPDATE jobs SET state = 'queued'
 WHERE state IN ('scheduled', 'retrying') AND run_at <= :now;

-- next_due --
-- The earliest run_at of a waiting job: how long an idle loop may sleep.
SELECT min(run_at) FROM jobs WHERE state IN ('scheduled', 'retrying');

-- ready_ids --
-- The best `limit` queued jobs of one task in one queue (jobs_ready, in order): what a round
-- claims next, with acquire_many, in the same transaction.
SELECT id FROM jobs WHERE state = 'queued' AND queue = :queue AND task = :task
 ORDER BY priority DESC, id LIMIT :limit;

-- acquire_many --
-- Claim the queued jobs of :ids (a JSON array). Held (:held = 1, claimed ahead of a free
-- worker): the attempt is not counted and started_at stays NULL until it starts (`began`),
-- or until its outcome is recorded. By ids, not `id IN (SELECT ... LIMIT :limit)`: SQLite
-- prepared that UPDATE again at every run once its parameters were bound (150 us a round,
-- most of a quiet service's CPU per job).
UPDATE jobs
   SET state = 'running', attempts = attempts + 1 - :held, holder = :holder,
       token = (random() & 9007199254740991),
       started_at = CASE WHEN :held THEN NULL ELSE :now END, lease_until = :lease_until
  FROM json_each(:ids) AS x
 WHERE jobs.id = x.value AND jobs.state = 'queued'
RETURNING jobs.id, task, queue, args, kwargs, attempts, max_attempts, token, trace_id,
          timeout, options, priority;

-- complete --
-- An attempt succeeded: recorded only while it still holds the job (its token).
-- A held attempt (started_at NULL) that ran and ended before `began` reached the store is
-- counted here.
UPDATE jobs
   SET state = 'succeeded', result = :result, finished_at = :now, holder = NULL,
       lease_until = NULL, attempts = attempts + (started_at IS NULL),
       started_at = coalesce(started_at, :now)
 WHERE id = :id AND token = :token AND state = 'running'
RETURNING id;

-- complete_many --
-- A round's successes in one statement (the hot path: no binding per row): :batch is a JSON
-- array of [id, token, result], each recorded only while its token holds, as complete. No
-- RETURNING (a step per row, each one giving the GIL away): the caller compares changes()
-- with the batch, and asks completed_of_batch only when some missed.
UPDATE jobs
   SET state = 'succeeded', result = b.value ->> '$[2]', finished_at = :now, holder = NULL,
       lease_until = NULL, attempts = attempts + (started_at IS NULL),
       started_at = coalesce(started_at, :now)
  FROM json_each(:batch) AS b
 WHERE jobs.id = b.value ->> '$[0]' AND jobs.token = b.value ->> '$[1]'
   AND jobs.state = 'running';

-- completed_of_batch --
-- Which jobs of a complete_many batch it recorded (their token held): succeeded, with that
-- token, at that round's time.
SELECT jobs.id FROM json_each(:batch) AS b
  JOIN jobs ON jobs.id = b.value ->> '$[0]' AND jobs.token = b.value ->> '$[1]'
 WHERE jobs.state = 'succeeded' AND jobs.finished_at = :now;

-- fail --
-- An attempt failed: retrying with its next run_at, or dead; fenced by the token.
UPDATE jobs
   SET state = :state, run_at = :run_at, finished_at = :finished_at, holder = NULL,
       lease_until = NULL, errors = json_insert(errors, '$[#]', json(:error)),
       attempts = attempts + (started_at IS NULL), started_at = coalesce(started_at, :now)
 WHERE id = :id AND token = :token AND state = 'running'
RETURNING id;

-- release --
-- An attempt handed back unfinished (a drain): queued again, the attempt not counted (a
-- held one never was).
UPDATE jobs
   SET state = 'queued', holder = NULL, token = NULL,
       attempts = CASE WHEN started_at IS NULL THEN attempts ELSE max(attempts - 1, 0) END,
       lease_until = NULL, started_at = NULL
 WHERE id = :id AND token = :token AND state = 'running'
RETURNING id;

-- extend_holder --
-- Renew every lease a live holder has.
UPDATE jobs SET lease_until = :lease_until WHERE holder = :holder AND state = 'running';

-- extend_letting_go --
-- Renew the leases of a live holder's cancelled attempts still running (jobs_letting_go).
UPDATE jobs SET lease_until = :lease_until
 WHERE holder = :holder AND state = 'cancelled' AND holder IS NOT NULL;

-- let_go --
-- A cancelled attempt ended (its outcome fenced off): the job is its own again, retryable.
UPDATE jobs SET holder = NULL, token = NULL, lease_until = NULL
 WHERE id = :id AND token = :token AND state = 'cancelled' AND holder IS NOT NULL;

-- let_go_holder --
-- A dead holder's cancelled attempts ended with it.
UPDATE jobs SET holder = NULL, token = NULL, lease_until = NULL
 WHERE holder = :holder AND state = 'cancelled' AND holder IS NOT NULL;

-- let_go_expired --
-- A cancelled attempt whose holder stopped renewing it (stuck): let go, as a lease rescue.
UPDATE jobs SET holder = NULL, token = NULL, lease_until = NULL
 WHERE id = :id AND state = 'cancelled' AND holder IS NOT NULL AND lease_until < :now;

-- extend_job --
-- Renew one attempt's lease (its heartbeat); nothing if the job is no longer its own.
UPDATE jobs SET lease_until = :lease_until
 WHERE id = :id AND token = :token AND state = 'running'
RETURNING id;

-- began --
-- A held attempt started: from now on it counts (an outcome recorded first counts it itself);
-- a job cancelled meanwhile keeps its token while letting go: the attempt that began counts.
UPDATE jobs SET attempts = attempts + 1, started_at = :at
 WHERE id = :id AND token = :token AND state IN ('running', 'cancelled') AND started_at IS NULL;

-- running_holders --
-- The holders with running jobs, or cancelled attempts still running (their liveness locks
-- say which are dead).
SELECT DISTINCT holder FROM jobs WHERE state = 'running'
UNION SELECT holder FROM jobs WHERE state = 'cancelled' AND holder IS NOT NULL;

-- expired_leases --
-- Running jobs (and cancelled attempts still running) whose lease ran out: a holder alive
-- but stuck.
SELECT id, holder FROM jobs WHERE state = 'running' AND lease_until < :now
UNION ALL SELECT id, holder FROM jobs
 WHERE state = 'cancelled' AND holder IS NOT NULL AND lease_until < :now;

-- held_of_holder --
-- A dead holder's held jobs (claimed ahead, their start not recorded): its began log says
-- which of them began.
SELECT id, token FROM jobs WHERE holder = :holder AND state = 'running' AND started_at IS NULL;

-- rescue_holder --
-- A dead holder's running jobs: queued again (attempt counted) or dead if spent. A held job
-- (started_at NULL) counts as begun, unless it is one of :unspent (its holder's began log
-- shows it never began): that one goes back as it was, no attempt, no error.
UPDATE jobs
   SET state = CASE WHEN id IN (SELECT value FROM json_each(:unspent)) THEN 'queued'
                    WHEN attempts + (started_at IS NULL) >= max_attempts THEN 'dead'
                    ELSE 'queued' END,
       finished_at = CASE WHEN id IN (SELECT value FROM json_each(:unspent)) THEN NULL
                          WHEN attempts + (started_at IS NULL) >= max_attempts THEN :now
                          ELSE NULL END,
       holder = NULL, token = NULL, lease_until = NULL,
       errors = CASE WHEN id IN (SELECT value FROM json_each(:unspent)) THEN errors
                     ELSE json_insert(errors, '$[#]', json_set(json(:error), '$.attempt',
                                      attempts + (started_at IS NULL))) END,
       attempts = attempts + (started_at IS NULL
                              AND id NOT IN (SELECT value FROM json_each(:unspent)))
 WHERE holder = :holder AND state = 'running'
RETURNING id, task, queue, attempts, state,
          id IN (SELECT value FROM json_each(:unspent));

-- rescue_job --
-- One job whose lease expired, taken back as rescue_holder does; a held one counts as
-- begun (its holder lives: it may begin it yet).
UPDATE jobs
   SET state = CASE WHEN attempts + (started_at IS NULL) >= max_attempts THEN 'dead'
                    ELSE 'queued' END,
       finished_at = CASE WHEN attempts + (started_at IS NULL) >= max_attempts THEN :now
                          ELSE NULL END,
       holder = NULL, token = NULL, lease_until = NULL,
       errors = json_insert(errors, '$[#]', json_set(json(:error), '$.attempt',
                                                     attempts + (started_at IS NULL))),
       attempts = attempts + (started_at IS NULL)
 WHERE id = :id AND state = 'running' AND lease_until < :now
RETURNING id, task, queue, attempts, state, 0;

-- acquire_id --
-- Acquire one given waiting job whatever its run_at (inline mode).
UPDATE jobs
   SET state = 'running', attempts = attempts + 1, holder = :holder,
       token = (random() & 9007199254740991), started_at = :now, lease_until = :lease_until
 WHERE id = :id AND state IN ('queued', 'scheduled', 'retrying')
RETURNING id, task, queue, args, kwargs, attempts, max_attempts, token, trace_id, timeout, options,
          priority;

-- get_job --
-- One job, every column (JOB_COLUMNS in rows.py).
SELECT id, task, queue, args, kwargs, priority, state, attempts, max_attempts, run_at, key,
       result, errors, enqueued_at, started_at, finished_at, holder, token, lease_until,
       trace_id, timeout, options
  FROM jobs WHERE id = :id;

-- job_status --
-- What Job.result() polls: state, attempts, result, errors.
SELECT state, attempts, result, errors FROM jobs WHERE id = :id;

-- cancel_waiting --
-- Cancel a job that is not running: at once.
UPDATE jobs SET state = 'cancelled', finished_at = :now, holder = NULL, token = NULL
 WHERE id = :id AND state IN ('scheduled', 'queued', 'retrying')
RETURNING id;

-- cancel_running --
-- Cancel a running job: its holder sees it no longer running and asks the attempt to stop.
-- Holder, token and lease stay ("letting go") until that attempt ends, its holder dies or
-- its lease runs out: a retry is refused meanwhile (the attempt may still run).
UPDATE jobs SET state = 'cancelled', finished_at = :now
 WHERE id = :id AND state = 'running'
RETURNING id;

-- retry_job --
-- Not while another unfinished job of its task holds its key (it would be a second one),
-- nor while a cancelled attempt of it, or of a workflow's child, still runs (its holder
-- letting go: the replay would find that child cancelled and fail).
UPDATE jobs
   SET state = 'queued', run_at = :now, finished_at = NULL, holder = NULL, token = NULL,
       lease_until = NULL, attempts = CASE WHEN state = 'retrying' THEN attempts ELSE 0 END
 WHERE id = :id AND state IN ('dead', 'cancelled', 'retrying') AND holder IS NULL
   AND NOT EXISTS (SELECT 1 FROM jobs AS c WHERE c.parent = jobs.id
                    AND c.state = 'cancelled' AND c.holder IS NOT NULL)
   AND (key IS NULL OR NOT EXISTS (
        SELECT 1 FROM jobs AS o WHERE o.task = jobs.task AND o.key = jobs.key
           AND o.id != jobs.id AND o.state IN ('scheduled', 'queued', 'running', 'retrying')))
RETURNING id;

-- retry_dead --
-- Every dead job, but those whose key another unfinished job of their task holds.
UPDATE jobs
   SET state = 'queued', run_at = :now, finished_at = NULL, holder = NULL, token = NULL,
       attempts = 0
 WHERE state = 'dead'
   AND (key IS NULL OR NOT EXISTS (
        SELECT 1 FROM jobs AS o WHERE o.task = jobs.task AND o.key = jobs.key
           AND o.id != jobs.id AND o.state IN ('scheduled', 'queued', 'running', 'retrying')))
RETURNING id;

-- list_jobs --
-- Jobs newest first, by state and queue (JOB_COLUMNS in rows.py).
SELECT id, task, queue, args, kwargs, priority, state, attempts, max_attempts, run_at, key,
       result, errors, enqueued_at, started_at, finished_at, holder, token, lease_until,
       trace_id, timeout, options
  FROM jobs
 WHERE (:state IS NULL OR state = :state) AND (:queue IS NULL OR queue = :queue)
 ORDER BY id DESC LIMIT :limit;

-- prune_finished --
-- The newest job is never pruned: SQLite gives a new row max(id) + 1, so keeping it means
-- an id is never given twice (an old handle names its old job or nothing).
DELETE FROM jobs WHERE id IN (
    SELECT id FROM jobs WHERE finished_at IS NOT NULL AND finished_at < :before
       AND state IN (:state, coalesce(:state2, :state))
       AND id < (SELECT max(id) FROM jobs)
     LIMIT :limit);

-- prune_job --
-- One finished job deleted by id (the console's delete), with prune_finished's rule: the
-- newest job is kept, so its id is never given again.
DELETE FROM jobs WHERE id = :id AND state IN ('succeeded', 'cancelled', 'dead')
   AND id < (SELECT max(id) FROM jobs);

-- queue_counts --
-- One partial index per state: no scan of finished jobs.
SELECT queue, 'queued', count(*) FROM jobs WHERE state = 'queued' GROUP BY queue
UNION ALL
SELECT queue, 'running', count(*) FROM jobs WHERE state = 'running' GROUP BY queue
UNION ALL
SELECT queue, state, count(*) FROM jobs WHERE state IN ('scheduled', 'retrying')
 GROUP BY queue, state
UNION ALL
SELECT queue, 'dead', count(*) FROM jobs WHERE state = 'dead' GROUP BY queue;

-- oldest_queued --
-- Per queue, the run_at of its oldest queued job (jobs_ready, covering).
SELECT queue, min(run_at) FROM jobs WHERE state = 'queued' GROUP BY queue;

-- finished_since --
-- Per queue, succeeded and dead jobs finished since :since (jobs_finished).
SELECT queue, state, count(*) FROM jobs
 WHERE finished_at >= :since AND state IN ('succeeded', 'dead') GROUP BY queue, state;

-- set_paused --
-- Pause or resume a queue (its row is made on first use).
INSERT INTO queues (name, paused) VALUES (:name, :paused)
    ON CONFLICT (name) DO UPDATE SET paused = excluded.paused;

-- set_concurrency --
-- A queue's live concurrency (NULL: back to the config's), kept beside its paused flag.
INSERT INTO queues (name, concurrency) VALUES (:name, :n)
    ON CONFLICT (name) DO UPDATE SET concurrency = excluded.concurrency;

-- queue_concurrency --
-- The queues given a live concurrency: a table of a few rows.
SELECT name, concurrency FROM queues WHERE concurrency IS NOT NULL;

-- paused_queues --
-- The queues paused now.
SELECT name FROM queues WHERE paused = 1;

-- count_all --
-- How many jobs the store holds.
SELECT count(*) FROM jobs;

-- insert_fire --
-- A cron fire's row: nothing (no row returned) if that due time fired already.
INSERT INTO cron_fires (entry, fire_at) VALUES (:entry, :fire_at)
    ON CONFLICT (entry, fire_at) DO NOTHING
RETURNING entry;

-- set_fire_job --
-- The job a cron fire made, written beside its fire row.
UPDATE cron_fires SET job_id = :job_id WHERE entry = :entry AND fire_at = :fire_at;

-- running_in_queue --
-- Jobs running in a queue across every holder: the host-wide cap.
SELECT count(*) FROM jobs WHERE state = 'running' AND queue = :queue;

-- ready_keys --
-- The concurrency keys with queued jobs in a queue (jobs_ckey_ready).
SELECT DISTINCT ckey FROM jobs WHERE state = 'queued' AND queue = :queue AND ckey IS NOT NULL;

-- running_by_key --
-- Running jobs per concurrency key (jobs_ckey_running).
SELECT ckey, count(*) FROM jobs WHERE state = 'running' AND ckey IS NOT NULL GROUP BY ckey;

-- ready_of_key --
-- Queued jobs of one concurrency key, of the tasks this service runs (a JSON list).
SELECT id, task, priority, ckey FROM jobs
 WHERE state = 'queued' AND queue = :queue AND ckey = :ckey
   AND task IN (SELECT value FROM json_each(:tasks))
 ORDER BY priority DESC, id LIMIT :limit;

-- ready_without_key --
-- Queued jobs of one task without a concurrency key, best first.
SELECT id, task, priority, ckey FROM jobs
 WHERE state = 'queued' AND queue = :queue AND task = :task AND ckey IS NULL
 ORDER BY priority DESC, id LIMIT :limit;

-- get_bucket --
-- A rate-limit bucket: tokens left and when they were counted.
SELECT tokens, at FROM rate_buckets WHERE name = :name;

-- put_bucket --
-- A rate-limit bucket after a round took tokens from it.
INSERT INTO rate_buckets (name, tokens, at) VALUES (:name, :tokens, :at)
    ON CONFLICT (name) DO UPDATE SET tokens = excluded.tokens, at = excluded.at;

-- queued_task_after --
-- Skip-scan of jobs_ready: the next task (after :after) with queued jobs in a queue.
SELECT task FROM jobs WHERE state = 'queued' AND queue = :queue AND task > :after
 ORDER BY task LIMIT 1;

-- queued_pair_after --
-- Skip-scan of jobs_ready: the next (queue, task) pair with queued jobs.
SELECT queue, task FROM jobs WHERE state = 'queued' AND (queue, task) > (:queue, :task)
 ORDER BY queue, task LIMIT 1;

-- candidates --
-- The best queued jobs of one task in one queue, for a round that claims several tasks.
SELECT id, priority FROM jobs WHERE state = 'queued' AND queue = :queue AND task = :task
 ORDER BY priority DESC, id LIMIT :limit;

-- dead_unknown --
-- Queued jobs of a task that no live or recent service declares: dead, UnknownTask.
UPDATE jobs
   SET state = 'dead', finished_at = :now, holder = NULL, token = NULL,
       errors = json_insert(errors, '$[#]', json(:error))
 WHERE id IN (SELECT id FROM jobs WHERE state = 'queued' AND queue = :queue AND task = :task
               LIMIT :limit)
RETURNING id;

-- catalog_forget_holder --
-- A holder's declarations, replaced by what it declares now.
DELETE FROM catalog WHERE holder = :holder;

-- catalog_put --
-- One task a holder runs, with the JSON of a job's defaults.
INSERT INTO catalog (task, holder, options, seen_at) VALUES (:task, :holder, :options, :now)
    ON CONFLICT (task, holder) DO UPDATE SET options = excluded.options,
                                             seen_at = excluded.seen_at;

-- catalog_touch --
-- A service that stops cleanly was running its tasks until now.
UPDATE catalog SET seen_at = :now WHERE holder = :holder;

-- catalog_all --
-- Every declaration, newest first per task.
SELECT task, holder, options, seen_at FROM catalog ORDER BY task, seen_at DESC;

-- catalog_forget_old --
-- A dead holder's declarations older than :before.
DELETE FROM catalog WHERE holder = :holder AND seen_at < :before;

-- meta_get --
-- A store-wide fact (catalog_born).
SELECT value FROM meta WHERE name = :name;

-- meta_init --
-- A store-wide fact, written once.
INSERT INTO meta (name, value) VALUES (:name, :value) ON CONFLICT (name) DO NOTHING;

-- attempt_states --
-- Whether attempts still hold their jobs (the ids are a JSON list).
SELECT id, state, token FROM jobs WHERE id IN (SELECT value FROM json_each(:ids));

-- last_fire --
-- The latest due time fired for a cron entry.
SELECT max(fire_at) FROM cron_fires WHERE entry = :entry;

-- pending --
-- Jobs that will still run: queued or running, or waiting with a run_at before :horizon.
SELECT count(*) FROM jobs WHERE state IN ('queued', 'running')
    OR (state IN ('scheduled', 'retrying') AND run_at <= :horizon);

-- state_counts --
-- Jobs per state (jobrun.testing.counts).
SELECT state, count(*) FROM jobs GROUP BY state;

-- explain_running --
-- Jobs running in the job's queue (jobrun explain).
SELECT count(*) FROM jobs WHERE state = 'running' AND queue = :queue;

-- explain_ahead --
-- Queued jobs of the queue that go first: higher priority, or as high and older.
SELECT count(*) FROM jobs WHERE state = 'queued' AND queue = :queue
   AND (priority > :priority OR (priority = :priority AND id < :id));

-- explain_key --
-- The job's concurrency key (jobrun explain).
SELECT ckey FROM jobs WHERE id = :id;

-- explain_key_running --
-- Jobs of that key running now (jobrun explain).
SELECT count(*) FROM jobs WHERE state = 'running' AND ckey = :ckey;

-- job_state --
-- One job's state (cancel reads it first).
SELECT state FROM jobs WHERE id = :id;

-- count_ids_between --
-- Whether a batch's rowids came out consecutive (they do inside our write transaction).
SELECT count(*) FROM jobs WHERE id BETWEEN :first AND :last;

-- queue_names --
-- Queues the store knows: paused or resumed once, or where a declared task's jobs go.
SELECT name FROM queues
UNION
SELECT json_extract(options, '$.queue') FROM catalog
 WHERE json_extract(options, '$.queue') IS NOT NULL;

-- meta_put --
-- A store-wide fact a service states anew each time it starts (durability).
INSERT INTO meta (name, value) VALUES (:name, :value)
    ON CONFLICT (name) DO UPDATE SET value = excluded.value;
