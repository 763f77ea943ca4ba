-- Named queries of durable workflows on PostgreSQL (postgres_workflows.py); each is its
-- namesake's in workflows.sql.

-- holds --
-- Whether an attempt still holds its job, read only (a quick step goes on while its record
-- waits to be committed with the next ones).
SELECT 1 FROM jobs WHERE id = %(job_id)s AND token = %(token)s AND state = 'running';

-- fence --
-- The attempt still holds its job; the row stays locked to the end of the transaction, so
-- no rescue or cancel can take the job back between the check and the write.
SELECT 1 FROM jobs WHERE id = %(job_id)s AND token = %(token)s AND state = 'running'
   FOR UPDATE;

-- steps_of --
-- A workflow's step records in call order.
SELECT seq, name, kind, state, result, error, attempts, started, finished, waits, until
  FROM steps WHERE job_id = %(job_id)s ORDER BY seq;

-- put_step --
-- A step record, new or updated (its result, error, attempts).
INSERT INTO steps (job_id, seq, name, kind, state, result, error, attempts, started, finished,
                   waits, until)
VALUES (%(job_id)s, %(seq)s, %(name)s, %(kind)s, %(state)s, %(result)s, %(error)s,
        %(attempts)s, %(started)s, %(finished)s, %(waits)s, %(until)s)
    ON CONFLICT (job_id, seq) DO UPDATE SET
       name = excluded.name, kind = excluded.kind, state = excluded.state,
       result = excluded.result, error = excluded.error, attempts = excluded.attempts,
       started = coalesce(steps.started, excluded.started), finished = excluded.finished,
       waits = excluded.waits, until = excluded.until;

-- waiting_step --
-- The step a workflow waits at, if any.
SELECT seq, name, kind, state, result, error, attempts, started, finished, waits, until
  FROM steps WHERE job_id = %(job_id)s AND state IN ('waiting', 'retrying')
 ORDER BY seq DESC LIMIT 1;

-- event_lock --
-- A wait_event and the events of its name take turns (see jobrun_events_wake).
SELECT pg_advisory_xact_lock(hashtext('jobrun:' || current_schema() || ':event'),
                             hashtext(%(name)s));

-- lock_suspending --
-- Workflows about to suspend: their rows locked before `suspend` reads what they wait for,
-- so a child's wake or an event committed meanwhile is read (see jobrun_fanin_wake).
SELECT id FROM jobs WHERE id = ANY(%(ids)s::bigint[]) ORDER BY id FOR UPDATE;

-- take_event --
-- Take the oldest untaken event of a name for a workflow's wait.
UPDATE events SET taken_by = %(job_id)s, taken_seq = %(seq)s
 WHERE id = (SELECT id FROM events WHERE name = %(name)s AND taken_by IS NULL
              ORDER BY id LIMIT 1 FOR UPDATE SKIP LOCKED)
RETURNING payload;

-- insert_event --
-- An event for wait_event; the events_wake trigger wakes its waiters.
INSERT INTO events (name, payload, sent_at) VALUES (%(name)s, %(payload)s, %(now)s)
RETURNING id;

-- adopt --
-- A body's children name it as their parent (gather, enqueue).
UPDATE jobs SET parent = %(parent)s, fanin = %(fanin)s WHERE id = ANY(%(ids)s::bigint[]);

-- suspend --
-- A workflow waits: scheduled with run_at at its deadline, the attempt not counted (a held
-- one never was).
UPDATE jobs
   SET state = 'scheduled', holder = NULL, token = NULL,
       attempts = CASE WHEN started_at IS NULL THEN attempts ELSE greatest(attempts - 1, 0) END,
       lease_until = NULL,
       run_at = CASE
         WHEN EXISTS (SELECT 1 FROM steps s JOIN events e ON e.name = s.waits
                       WHERE s.job_id = %(id)s AND s.state = 'waiting' AND e.taken_by IS NULL)
           THEN %(now)s
         WHEN EXISTS (SELECT 1 FROM steps WHERE job_id = %(id)s AND state = 'waiting'
                         AND kind = 'gather')
          AND NOT EXISTS (SELECT 1 FROM jobs c WHERE c.parent = %(id)s AND c.fanin = 1
                             AND c.state IN ('scheduled', 'queued', 'running', 'retrying'))
           THEN %(now)s
         ELSE %(run_at)s END
 WHERE id = %(id)s AND token = %(token)s AND state = 'running'
RETURNING id;

-- child_results --
-- A gather's children: their state and result, in the order gathered.
SELECT c.id, j.state, j.result, j.errors
  FROM unnest(%(ids)s::bigint[]) WITH ORDINALITY AS c(id, n) LEFT JOIN jobs j ON j.id = c.id
 ORDER BY c.n;

-- children_of --
-- The jobs a workflow started (jobs_children).
SELECT id FROM jobs WHERE parent = %(id)s ORDER BY id;

-- open_children --
-- A workflow's children not finished yet (to cancel them with it).
SELECT count(*) FROM jobs WHERE parent = %(id)s AND fanin = 1
   AND state IN ('scheduled', 'queued', 'running', 'retrying');

-- parents_of --
-- The parent workflow of each of these jobs (a JSON list of ids).
SELECT id, parent FROM jobs WHERE id = ANY(%(ids)s::bigint[]);

-- cancel_descendants --
-- A cancelled workflow's unfinished children, and theirs, cancelled too.
WITH RECURSIVE tree(id) AS (
    SELECT id FROM jobs WHERE parent = %(id)s
    UNION SELECT j.id FROM jobs j JOIN tree t ON j.parent = t.id)
UPDATE jobs SET state = 'cancelled', finished_at = %(now)s,
       holder = CASE WHEN state = 'running' THEN holder END,
       token = CASE WHEN state = 'running' THEN token END
 WHERE id IN (SELECT id FROM tree)
   AND state IN ('scheduled', 'queued', 'running', 'retrying')
RETURNING id;

-- retry_children --
-- A retried workflow's gathered children that ended dead or cancelled (and theirs) are
-- retried with it, so its gathers wait on them again (succeeded children stay done); not
-- one whose cancelled attempt still runs (retry_job).
WITH RECURSIVE tree(id) AS (
    SELECT id FROM jobs WHERE parent = ANY(%(ids)s) AND fanin = 1
       AND state IN ('dead', 'cancelled')
    UNION SELECT j.id FROM jobs j JOIN tree t ON j.parent = t.id
     WHERE j.fanin = 1 AND j.state IN ('dead', 'cancelled'))
UPDATE jobs
   SET state = 'queued', run_at = %(now)s, finished_at = NULL, holder = NULL, token = NULL,
       lease_until = NULL, attempts = 0
 WHERE id IN (SELECT id FROM tree) AND holder IS NULL
   AND (key IS NULL OR NOT EXISTS (
        SELECT 1 FROM jobs AS o WHERE o.task = jobs.task AND o.key = jobs.key
           AND o.id <> jobs.id AND o.state IN ('scheduled', 'queued', 'running', 'retrying')))
RETURNING id;

-- reopen_gathers --
-- A retried workflow's failed gathers wait again on their (retried) children.
UPDATE steps SET state = 'waiting', error = NULL, finished = NULL
 WHERE job_id = ANY(%(ids)s) AND state = 'failed' AND kind = 'gather';

-- forget_failures --
-- A retried workflow replays its failed steps anew (a step that failed for good would raise
-- StepFailed again at once); its recorded successes stay.
DELETE FROM steps WHERE job_id = ANY(%(ids)s) AND state = 'failed';
