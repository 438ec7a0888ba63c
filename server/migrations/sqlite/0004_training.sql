-- Training tasks are a queue: workers (in this process or `autolearn worker` elsewhere)
-- claim queued rows and hold a lease they renew while training; a row whose lease ran out
-- belongs to a worker that died.
CREATE TABLE tasks (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    instance_id INTEGER NOT NULL REFERENCES instances(id) ON DELETE CASCADE,
    name TEXT NOT NULL,
    description TEXT NOT NULL DEFAULT '',
    dataset_id INTEGER NOT NULL,
    labels TEXT NOT NULL,
    preset TEXT NOT NULL,
    device TEXT NOT NULL,
    max_minutes REAL NOT NULL,
    base_model_id INTEGER,
    image_size INTEGER NOT NULL,
    max_epochs INTEGER,
    seed INTEGER NOT NULL,
    status TEXT NOT NULL,
    progress REAL NOT NULL DEFAULT 0,
    stop_requested INTEGER NOT NULL DEFAULT 0,
    device_used TEXT,
    worker TEXT,
    lease_until INTEGER NOT NULL DEFAULT 0,
    attempts INTEGER NOT NULL DEFAULT 0,
    error TEXT,
    model_id INTEGER,
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
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    task_id INTEGER NOT NULL REFERENCES tasks(id) ON DELETE CASCADE,
    kind TEXT NOT NULL,
    body TEXT NOT NULL,
    at TEXT NOT NULL
);
CREATE INDEX task_events_task ON task_events (task_id, id);

CREATE TABLE models (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    instance_id INTEGER NOT NULL REFERENCES instances(id) ON DELETE CASCADE,
    task_id INTEGER NOT NULL,
    version INTEGER NOT NULL,
    preset TEXT NOT NULL,
    labels TEXT NOT NULL,
    image_size INTEGER NOT NULL,
    metrics TEXT NOT NULL,
    size_bytes INTEGER NOT NULL,
    pretrained INTEGER NOT NULL,
    base_model_id INTEGER,
    artifact TEXT NOT NULL,
    created_at TEXT NOT NULL,
    UNIQUE (instance_id, version)
);
