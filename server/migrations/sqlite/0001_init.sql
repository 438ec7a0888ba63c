-- Booleans are INTEGER 0/1 and times are RFC 3339 TEXT on both databases, so one code path
-- (sqlx's Any driver) reads them alike.
CREATE TABLE users (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    username TEXT NOT NULL UNIQUE,
    password_hash TEXT NOT NULL,
    is_admin INTEGER NOT NULL DEFAULT 0,
    created_at TEXT NOT NULL
);

-- Session and API tokens; only a SHA-256 of the token is kept.
CREATE TABLE sessions (
    token_hash TEXT PRIMARY KEY,
    user_id INTEGER NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    created_at TEXT NOT NULL,
    expires_at INTEGER NOT NULL
);

-- instance_id 0 means "on every instance".
CREATE TABLE grants (
    user_id INTEGER NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    permission TEXT NOT NULL,
    instance_id INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (user_id, permission, instance_id)
);

CREATE TABLE instances (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    name TEXT NOT NULL UNIQUE,
    kind TEXT NOT NULL,
    description TEXT NOT NULL DEFAULT '',
    created_at TEXT NOT NULL
);

CREATE TABLE datasets (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    instance_id INTEGER NOT NULL REFERENCES instances(id) ON DELETE CASCADE,
    name TEXT NOT NULL,
    description TEXT NOT NULL DEFAULT '',
    location TEXT NOT NULL,
    skipped TEXT NOT NULL DEFAULT '[]',
    created_at TEXT NOT NULL,
    indexed_at TEXT NOT NULL,
    UNIQUE (instance_id, name)
);

-- One row per image file found. `removed`: the file is gone from storage (kept so its labels
-- come back if it does); `deleted`: deleted by a user; `edited`: the annotation was changed
-- in the browser, so re-indexing must not overwrite it from the source files.
CREATE TABLE images (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    dataset_id INTEGER NOT NULL REFERENCES datasets(id) ON DELETE CASCADE,
    rel_path TEXT NOT NULL,
    width INTEGER NOT NULL,
    height INTEGER NOT NULL,
    size_bytes INTEGER NOT NULL,
    annotation TEXT NOT NULL DEFAULT '{}',
    labelled INTEGER NOT NULL DEFAULT 0,
    deleted INTEGER NOT NULL DEFAULT 0,
    removed INTEGER NOT NULL DEFAULT 0,
    edited INTEGER NOT NULL DEFAULT 0,
    updated_at TEXT NOT NULL,
    UNIQUE (dataset_id, rel_path)
);

-- Distinct labels of each image, for filtering and per-label counts.
CREATE TABLE image_labels (
    image_id INTEGER NOT NULL REFERENCES images(id) ON DELETE CASCADE,
    label TEXT NOT NULL,
    PRIMARY KEY (image_id, label)
);
CREATE INDEX image_labels_label ON image_labels (label);
