-- Preview links (SPEC §6): signed, expiring, revocable read access to one model's artifact.
-- The token itself is not stored: it is `<id>.<expires_at>.<HMAC>`, checked against this row.
CREATE TABLE preview_links (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    model_id INTEGER NOT NULL REFERENCES models(id) ON DELETE CASCADE,
    created_by INTEGER,
    created_at TEXT NOT NULL,
    expires_at INTEGER NOT NULL,
    revoked_at TEXT
);
CREATE INDEX preview_links_model ON preview_links (model_id, id);
