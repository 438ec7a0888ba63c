-- Preview links (SPEC §6): signed, expiring, revocable read access to one model's artifact.
-- The token itself is not stored: it is `<id>.<expires_at>.<HMAC>`, checked against this row.
CREATE TABLE preview_links (
    id BIGSERIAL PRIMARY KEY,
    model_id BIGINT NOT NULL REFERENCES models(id) ON DELETE CASCADE,
    created_by BIGINT,
    created_at TEXT NOT NULL,
    expires_at BIGINT NOT NULL,
    revoked_at TEXT
);
CREATE INDEX preview_links_model ON preview_links (model_id, id);
