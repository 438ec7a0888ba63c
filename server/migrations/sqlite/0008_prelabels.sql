-- Pre-labels (drafts) from a model version, kept apart from annotations: a draft is never a
-- label until the user accepts it, which saves it through the ordinary annotation path.
-- One run per dataset at a time; a new run replaces the previous run's drafts.
CREATE TABLE prelabel_runs (
    dataset_id INTEGER PRIMARY KEY REFERENCES datasets(id) ON DELETE CASCADE,
    model_id INTEGER NOT NULL REFERENCES models(id) ON DELETE CASCADE,
    -- running | done | failed
    state TEXT NOT NULL,
    done INTEGER NOT NULL,
    total INTEGER NOT NULL,
    message TEXT,
    started_at TEXT NOT NULL,
    -- Written with each batch: a running run not updated for a while lost its server.
    updated_at TEXT NOT NULL
);
CREATE TABLE prelabels (
    image_id INTEGER PRIMARY KEY REFERENCES images(id) ON DELETE CASCADE,
    dataset_id INTEGER NOT NULL REFERENCES datasets(id) ON DELETE CASCADE,
    model_id INTEGER NOT NULL REFERENCES models(id) ON DELETE CASCADE,
    draft TEXT NOT NULL,
    created_at TEXT NOT NULL
);
CREATE INDEX prelabels_dataset ON prelabels (dataset_id, image_id);
