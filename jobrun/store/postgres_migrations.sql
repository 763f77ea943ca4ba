-- Steps after postgres_schema.sql (version 1) on PostgreSQL. Block `-- vN --` takes a store
-- from N-1 to N.

-- v2 --
-- A queue's concurrency set live by an operator (`jobrun top`), NULL: the config's.
ALTER TABLE queues ADD COLUMN concurrency INTEGER;
