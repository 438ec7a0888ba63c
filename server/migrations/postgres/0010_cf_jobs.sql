-- Behaviour-log builds (item-based CF) as database rows, like training tasks: every API
-- server reads their progress, and any server's builder runs them, so a build outlives the
-- server that received its log. The parsed log is kept in the models store (log_key) until
-- the build ends.
CREATE TABLE cf_jobs (
    id TEXT PRIMARY KEY,
    instance_id BIGINT NOT NULL REFERENCES instances(id) ON DELETE CASCADE,
    -- receiving (the log is being uploaded and parsed) | queued | running | succeeded | failed
    state TEXT NOT NULL,
    stage TEXT NOT NULL,
    progress DOUBLE PRECISION NOT NULL,
    error TEXT,
    -- JSON CfStats once succeeded.
    stats TEXT,
    top_n BIGINT NOT NULL,
    log_key TEXT,
    -- The claim receiving or running it (its server's name and a token of its own), and
    -- until when (Unix seconds) it counts as alive.
    owner TEXT,
    lease_until BIGINT NOT NULL,
    attempts BIGINT NOT NULL DEFAULT 0,
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL
);
-- One open build per instance, also across servers.
CREATE UNIQUE INDEX cf_jobs_one_open ON cf_jobs (instance_id) WHERE state IN ('receiving', 'queued', 'running');
CREATE INDEX cf_jobs_state ON cf_jobs (state, lease_until);
