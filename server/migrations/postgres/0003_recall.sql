-- Recall tables of recall instances: one row per key, the value a normalised
-- `id:weight,id:weight` list (empty for the item filter).
CREATE TABLE recall_rows (
    instance_id BIGINT NOT NULL REFERENCES instances(id) ON DELETE CASCADE,
    tbl TEXT NOT NULL,
    key TEXT NOT NULL,
    value TEXT NOT NULL,
    PRIMARY KEY (instance_id, tbl, key)
);

CREATE TABLE recall_strategies (
    id BIGSERIAL PRIMARY KEY,
    instance_id BIGINT NOT NULL REFERENCES instances(id) ON DELETE CASCADE,
    name TEXT NOT NULL,
    kind TEXT NOT NULL,
    count BIGINT NOT NULL,
    position BIGINT NOT NULL,
    UNIQUE (instance_id, name)
);

CREATE TABLE recall_filters (
    id BIGSERIAL PRIMARY KEY,
    instance_id BIGINT NOT NULL REFERENCES instances(id) ON DELETE CASCADE,
    name TEXT NOT NULL,
    kind TEXT NOT NULL,
    UNIQUE (instance_id, name)
);

-- Deployed endpoints (recall now, predict later). Only a hash of the token is kept.
CREATE TABLE services (
    id BIGSERIAL PRIMARY KEY,
    name TEXT NOT NULL UNIQUE,
    instance_id BIGINT NOT NULL REFERENCES instances(id) ON DELETE CASCADE,
    kind TEXT NOT NULL,
    token_hash TEXT NOT NULL,
    replicas BIGINT NOT NULL DEFAULT 1,
    created_at TEXT NOT NULL
);

-- Bumped by every change to an instance's recall tables, strategies or filters, so
-- serving processes (possibly on other machines) know to reload.
ALTER TABLE instances ADD COLUMN recall_version BIGINT NOT NULL DEFAULT 0;
