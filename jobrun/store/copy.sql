-- Named SQL of `jobrun store copy` (store/copy.py). {table}, {columns} and {marks} are
-- filled in from copy.py's fixed table list, never from input; the marks are each
-- dialect's (? on SQLite, %s on PostgreSQL).

-- count --
-- How many rows a table of the target holds already (a non-empty target is refused).
SELECT count(*) FROM {table};

-- rows --
-- Every row of one table of the source, in a stable order.
SELECT {columns} FROM {table} ORDER BY 1;

-- put_sqlite --
-- One row into the SQLite target, as it was (ids included).
INSERT INTO {table} ({columns}) VALUES ({marks});

-- put_postgres --
-- One row into the PostgreSQL target, ids included (its identity columns are GENERATED
-- ALWAYS: the source's ids override them).
INSERT INTO {table} ({columns}) OVERRIDING SYSTEM VALUE VALUES ({marks});

-- meta_clear --
-- What the target wrote about itself on creation, replaced by the source's (except presence
-- rows and the schema version, which are the target's own).
DELETE FROM meta;

-- last_id_postgres --
-- The highest id a PostgreSQL table's identity ever handed out (pruned rows included).
SELECT CASE WHEN is_called THEN last_value ELSE 0 END FROM {sequence};

-- sequence_of --
-- The identity sequence of a PostgreSQL table's id.
SELECT pg_get_serial_sequence({table_text}, 'id');

-- move_sequence --
-- The target's identity moves past every id copied and every id the source ever handed
-- out (%(last)s): ids are never reused.
SELECT setval(pg_get_serial_sequence({table_text}, 'id'),
              greatest(%(last)s, (SELECT coalesce(max(id), 0) FROM {table}), 1),
              greatest(%(last)s, (SELECT coalesce(max(id), 0) FROM {table})) > 0);

-- lock_target --
-- The PostgreSQL target's copy lock, to the end of the transaction: a second copy into the
-- same schema waits here, then finds it not empty (SQLite's BEGIN IMMEDIATE does the same).
SELECT pg_advisory_xact_lock(hashtext('jobrun:' || current_schema() || ':copy'));
