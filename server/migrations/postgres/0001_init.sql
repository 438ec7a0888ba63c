-- Booleans are BIGINT 0/1 and times are RFC 3339 TEXT on both databases, so one code path
-- (sqlx's Any driver) reads them alike.
CREATE TABLE users (
    id BIGSERIAL PRIMARY KEY,
    username TEXT NOT NULL UNIQUE,
    password_hash TEXT NOT NULL,
    is_admin BIGINT NOT NULL DEFAULT 0,
    created_at TEXT NOT NULL
);

-- Session and API tokens; only a SHA-256 of the token is kept.
CREATE TABLE sessions (
    token_hash TEXT PRIMARY KEY,
    user_id BIGINT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    created_at TEXT NOT NULL,
    expires_at BIGINT NOT NULL
);

-- instance_id 0 means "on every instance".
CREATE TABLE grants (
    user_id BIGINT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    permission TEXT NOT NULL,
    instance_id BIGINT NOT NULL DEFAULT 0,
    PRIMARY KEY (user_id, permission, instance_id)
);

CREATE TABLE instances (
    id BIGSERIAL PRIMARY KEY,
    name TEXT NOT NULL UNIQUE,
    kind TEXT NOT NULL,
    description TEXT NOT NULL DEFAULT '',
    created_at TEXT NOT NULL
);

CREATE TABLE datasets (
    id BIGSERIAL PRIMARY KEY,
    instance_id BIGINT NOT NULL REFERENCES instances(id) ON DELETE CASCADE,
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
    id BIGSERIAL PRIMARY KEY,
    dataset_id BIGINT NOT NULL REFERENCES datasets(id) ON DELETE CASCADE,
    rel_path TEXT NOT NULL,
    width BIGINT NOT NULL,
    height BIGINT NOT NULL,
    size_bytes BIGINT NOT NULL,
    annotation TEXT NOT NULL DEFAULT '{}',
    labelled BIGINT NOT NULL DEFAULT 0,
    deleted BIGINT NOT NULL DEFAULT 0,
    removed BIGINT NOT NULL DEFAULT 0,
    edited BIGINT NOT NULL DEFAULT 0,
    updated_at TEXT NOT NULL,
    UNIQUE (dataset_id, rel_path)
);

-- Distinct labels of each image, for filtering and per-label counts.
CREATE TABLE image_labels (
    image_id BIGINT NOT NULL REFERENCES images(id) ON DELETE CASCADE,
    label TEXT NOT NULL,
    PRIMARY KEY (image_id, label)
);
CREATE INDEX image_labels_label ON image_labels (label);
