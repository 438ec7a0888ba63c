-- Training tasks are a queue: workers (in this process or `autolearn worker` elsewhere)
-- claim queued rows and hold a lease they renew while training; a row whose lease ran out
-- belongs to a worker that died.
CREATE TABLE tasks (
    id BIGSERIAL PRIMARY KEY,
    instance_id BIGINT NOT NULL REFERENCES instances(id) ON DELETE CASCADE,
    name TEXT NOT NULL,
    description TEXT NOT NULL DEFAULT '',
    dataset_id BIGINT NOT NULL,
    labels TEXT NOT NULL,
    preset TEXT NOT NULL,
    device TEXT NOT NULL,
    max_minutes DOUBLE PRECISION NOT NULL,
    base_model_id BIGINT,
    image_size BIGINT NOT NULL,
    max_epochs BIGINT,
    seed BIGINT NOT NULL,
    status TEXT NOT NULL,
    progress DOUBLE PRECISION NOT NULL DEFAULT 0,
    stop_requested BIGINT NOT NULL DEFAULT 0,
    device_used TEXT,
    worker TEXT,
    lease_until BIGINT NOT NULL DEFAULT 0,
    attempts BIGINT NOT NULL DEFAULT 0,
    error TEXT,
    model_id BIGINT,
    last_progress TEXT,
    created_at TEXT NOT NULL,
    started_at TEXT,
    finished_at TEXT,
    UNIQUE (instance_id, name)
);
CREATE INDEX tasks_status ON tasks (status, id);

-- Progress, logs and status changes of a task, kept: the SSE stream and the logs page read
-- them, also when the worker runs on another machine.
CREATE TABLE task_events (
    id BIGSERIAL PRIMARY KEY,
    task_id BIGINT NOT NULL REFERENCES tasks(id) ON DELETE CASCADE,
    kind TEXT NOT NULL,
    body TEXT NOT NULL,
    at TEXT NOT NULL
);
CREATE INDEX task_events_task ON task_events (task_id, id);

CREATE TABLE models (
    id BIGSERIAL PRIMARY KEY,
    instance_id BIGINT NOT NULL REFERENCES instances(id) ON DELETE CASCADE,
    task_id BIGINT NOT NULL,
    version BIGINT NOT NULL,
    preset TEXT NOT NULL,
    labels TEXT NOT NULL,
    image_size BIGINT NOT NULL,
    metrics TEXT NOT NULL,
    size_bytes BIGINT NOT NULL,
    pretrained BIGINT NOT NULL,
    base_model_id BIGINT,
    artifact TEXT NOT NULL,
    created_at TEXT NOT NULL,
    UNIQUE (instance_id, version)
);
