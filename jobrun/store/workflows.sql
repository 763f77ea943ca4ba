-- Named queries of durable workflows (jobrun/workflows, store/sqlite_workflows.py).

-- fence --
-- Whether an attempt still holds its workflow job: every step write checks it first.
SELECT 1 FROM jobs WHERE id = :job_id AND token = :token AND state = 'running';

-- steps_of --
-- A workflow's step records in call order.
SELECT seq, name, kind, state, result, error, attempts, started, finished, waits, until
  FROM steps WHERE job_id = :job_id ORDER BY seq;

-- put_step --
-- A step record, new or updated (its result, error, attempts).
INSERT INTO steps (job_id, seq, name, kind, state, result, error, attempts, started, finished,
                   waits, until)
VALUES (:job_id, :seq, :name, :kind, :state, :result, :error, :attempts, :started, :finished,
        :waits, :until)
    ON CONFLICT (job_id, seq) DO UPDATE SET
       name = excluded.name, kind = excluded.kind, state = excluded.state,
       result = excluded.result, error = excluded.error, attempts = excluded.attempts,
       started = coalesce(steps.started, excluded.started), finished = excluded.finished,
       waits = excluded.waits, until = excluded.until;

-- put_step_fenced --
-- One statement (its own transaction): the record, only while the attempt holds its job.
INSERT INTO steps (job_id, seq, name, kind, state, result, error, attempts, started, finished,
                   waits, until)
SELECT :job_id, :seq, :name, :kind, :state, :result, :error, :attempts, :started, :finished,
       :waits, :until
 WHERE EXISTS (SELECT 1 FROM jobs WHERE id = :job_id AND token = :token AND state = 'running')
    ON CONFLICT (job_id, seq) DO UPDATE SET
       name = excluded.name, kind = excluded.kind, state = excluded.state,
       result = excluded.result, error = excluded.error, attempts = excluded.attempts,
       started = coalesce(steps.started, excluded.started), finished = excluded.finished,
       waits = excluded.waits, until = excluded.until;

-- sync_later --
-- A workflow body's last records, at durability = full: no sync of their own, the attempt's
-- outcome commit that follows syncs the log with them in it (a power loss before it loses
-- both, as a crash just before them would).
PRAGMA synchronous=NORMAL;

-- sync_each --
-- Back to a sync per commit (durability = full).
PRAGMA synchronous=FULL;

-- waiting_step --
-- The step a workflow waits at, if any.
SELECT seq, name, kind, state, result, error, attempts, started, finished, waits, until
  FROM steps WHERE job_id = :job_id AND state IN ('waiting', 'retrying')
 ORDER BY seq DESC LIMIT 1;

-- take_event --
-- The oldest event of that name nobody took yet, taken by this workflow's step.
UPDATE events SET taken_by = :job_id, taken_seq = :seq
 WHERE id = (SELECT id FROM events WHERE name = :name AND taken_by IS NULL ORDER BY id LIMIT 1)
RETURNING payload;

-- insert_event --
-- An event for wait_event; the events_wake trigger wakes its waiters.
INSERT INTO events (name, payload, sent_at) VALUES (:name, :payload, :now) RETURNING id;

-- adopt --
-- Jobs just started by a workflow body (ids: a JSON list) name it as their parent.
UPDATE jobs SET parent = :parent, fanin = :fanin
 WHERE id IN (SELECT value FROM json_each(:ids));

-- suspend --
-- A workflow gives its slot back and waits (not an attempt): until `run_at`, or now if what
-- it waits for came meanwhile (an event sent, its children finished, before this commit).
UPDATE jobs
   SET state = 'scheduled', holder = NULL, token = NULL,
       attempts = CASE WHEN started_at IS NULL THEN attempts ELSE max(attempts - 1, 0) END,
       lease_until = NULL,
       run_at = CASE
         WHEN EXISTS (SELECT 1 FROM steps s JOIN events e ON e.name = s.waits
                       WHERE s.job_id = :id AND s.state = 'waiting' AND e.taken_by IS NULL)
           THEN :now
         WHEN EXISTS (SELECT 1 FROM steps WHERE job_id = :id AND state = 'waiting'
                         AND kind = 'gather')
          AND NOT EXISTS (SELECT 1 FROM jobs c WHERE c.parent = :id AND c.fanin = 1
                             AND c.state IN ('scheduled', 'queued', 'running', 'retrying'))
           THEN :now
         ELSE :run_at END
 WHERE id = :id AND token = :token AND state = 'running'
RETURNING id;

-- child_results --
-- A gather's children: their state and result, in the order gathered.
SELECT c.value, j.state, j.result, j.errors
  FROM json_each(:ids) c LEFT JOIN jobs j ON j.id = c.value
 ORDER BY c.key;

-- children_of --
-- The jobs a workflow started (jobs_children).
SELECT id FROM jobs WHERE parent = :id ORDER BY id;

-- open_children --
-- A workflow's children not finished yet (to cancel them with it).
SELECT count(*) FROM jobs WHERE parent = :id AND fanin = 1
   AND state IN ('scheduled', 'queued', 'running', 'retrying');

-- parents_of --
-- The parent workflow of each of these jobs (a JSON list of ids).
SELECT id, parent FROM jobs WHERE id IN (SELECT value FROM json_each(:ids));

-- cancel_descendants --
-- Cancelling a workflow cancels its unfinished children, and theirs.
WITH RECURSIVE tree(id) AS (
    SELECT id FROM jobs WHERE parent = :id
    UNION SELECT j.id FROM jobs j JOIN tree t ON j.parent = t.id)
UPDATE jobs SET state = 'cancelled', finished_at = :now,
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
    SELECT id FROM jobs WHERE parent IN (SELECT value FROM json_each(:ids)) AND fanin = 1
       AND state IN ('dead', 'cancelled')
    UNION SELECT j.id FROM jobs j JOIN tree t ON j.parent = t.id
     WHERE j.fanin = 1 AND j.state IN ('dead', 'cancelled'))
UPDATE jobs
   SET state = 'queued', run_at = :now, finished_at = NULL, holder = NULL, token = NULL,
       lease_until = NULL, attempts = 0
 WHERE id IN (SELECT id FROM tree) AND holder IS NULL
   AND (key IS NULL OR NOT EXISTS (
        SELECT 1 FROM jobs AS o WHERE o.task = jobs.task AND o.key = jobs.key
           AND o.id != jobs.id AND o.state IN ('scheduled', 'queued', 'running', 'retrying')))
RETURNING id;

-- reopen_gathers --
-- A retried workflow's failed gathers wait again on their (retried) children.
UPDATE steps SET state = 'waiting', error = NULL, finished = NULL
 WHERE job_id IN (SELECT value FROM json_each(:ids)) AND state = 'failed' AND kind = 'gather';

-- forget_failures --
-- A retried workflow replays its failed steps anew (a step that failed for good would raise
-- StepFailed again at once); its recorded successes stay.
DELETE FROM steps WHERE job_id IN (SELECT value FROM json_each(:ids)) AND state = 'failed';
