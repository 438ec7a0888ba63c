-- Tags defined on a dataset, also those no image carries yet (the labelling UI's tag list).
CREATE TABLE dataset_labels (
    dataset_id INTEGER NOT NULL REFERENCES datasets(id) ON DELETE CASCADE,
    name TEXT NOT NULL,
    PRIMARY KEY (dataset_id, name)
);
INSERT INTO dataset_labels (dataset_id, name)
    SELECT DISTINCT m.dataset_id, l.label FROM image_labels l JOIN images m ON m.id = l.image_id;
