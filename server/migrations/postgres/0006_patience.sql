-- Early-stopping patience chosen for a task (NULL: the default).
ALTER TABLE tasks ADD COLUMN patience BIGINT;
