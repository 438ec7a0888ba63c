//! Datasets and the results of indexing them.

use std::collections::{BTreeMap, HashMap};

use shared::api::{Annotation, Dataset, SkippedFile};
use sqlx::{Any, Row, Transaction};

use super::{Db, now_rfc3339};
use crate::indexer::IndexReport;

/// Where a dataset lives and what kind of instance owns it: what routes need to serve it.
#[derive(Debug, Clone)]
pub struct DatasetRef {
    pub id: i64,
    pub instance_id: i64,
    pub name: String,
    pub location: String,
    pub kind: shared::InstanceType,
}

impl Db {
    /// Creates a dataset with its indexed images in one transaction.
    pub async fn create_dataset(
        &self,
        instance_id: i64,
        name: &str,
        description: &str,
        location: &str,
        report: &IndexReport,
    ) -> sqlx::Result<i64> {
        let mut tx = self.pool.begin().await?;
        let now = now_rfc3339();
        let id: i64 = sqlx::query(
            "INSERT INTO datasets (instance_id, name, description, location, skipped, created_at, indexed_at) \
             VALUES ($1, $2, $3, $4, '[]', $5, $5) RETURNING id",
        )
        .bind(instance_id)
        .bind(name)
        .bind(description)
        .bind(location)
        .bind(&now)
        .fetch_one(&mut *tx)
        .await?
        .try_get(0)?;
        apply_index(&mut tx, id, report).await?;
        tx.commit().await?;
        Ok(id)
    }

    /// Applies a fresh index of an existing dataset, [`REINDEX_BATCH`] images per
    /// transaction: a long re-index does not hold SQLite's one write lock for the whole
    /// folder, so labelling goes on meanwhile (an image edited meanwhile keeps its edit:
    /// the guard is in each UPDATE).
    pub async fn reindex_dataset(&self, id: i64, report: &IndexReport) -> sqlx::Result<()> {
        let mut tx = self.pool.begin().await?;
        let mut existing = read_existing(&mut tx, id).await?;
        tx.commit().await?;
        for batch in report.images.chunks(REINDEX_BATCH) {
            let mut tx = self.pool.begin().await?;
            apply_images(&mut tx, id, batch, &mut existing).await?;
            tx.commit().await?;
        }
        let mut tx = self.pool.begin().await?;
        finish_index(&mut tx, id, report, &existing).await?;
        tx.commit().await
    }

    pub async fn dataset_ref(&self, id: i64) -> sqlx::Result<Option<DatasetRef>> {
        let row = sqlx::query(
            "SELECT d.id, d.instance_id, d.name, d.location, i.kind FROM datasets d \
             JOIN instances i ON i.id = d.instance_id WHERE d.id = $1",
        )
        .bind(id)
        .fetch_optional(&self.pool)
        .await?;
        let Some(r) = row else { return Ok(None) };
        let kind: String = r.try_get(4)?;
        Ok(Some(DatasetRef {
            id: r.try_get(0)?,
            instance_id: r.try_get(1)?,
            name: r.try_get(2)?,
            location: r.try_get(3)?,
            kind: shared::InstanceType::parse(&kind).ok_or_else(|| {
                sqlx::Error::Decode(format!("unknown instance type {kind:?}").into())
            })?,
        }))
    }

    pub async fn dataset_ids(&self, instance_id: i64) -> sqlx::Result<Vec<i64>> {
        sqlx::query("SELECT id FROM datasets WHERE instance_id = $1 ORDER BY id")
            .bind(instance_id)
            .fetch_all(&self.pool)
            .await?
            .iter()
            .map(|r| r.try_get(0))
            .collect()
    }

    /// A dataset with its counts and skipped-file report.
    pub async fn dataset(&self, id: i64) -> sqlx::Result<Option<Dataset>> {
        let row = sqlx::query(
            "SELECT id, instance_id, name, description, location, skipped, created_at, indexed_at \
             FROM datasets WHERE id = $1",
        )
        .bind(id)
        .fetch_optional(&self.pool)
        .await?;
        let Some(r) = row else { return Ok(None) };
        let counts = sqlx::query(
            "SELECT \
               COUNT(CASE WHEN deleted = 0 THEN 1 END), \
               COUNT(CASE WHEN deleted = 0 AND labelled = 1 THEN 1 END), \
               COUNT(CASE WHEN deleted = 1 THEN 1 END) \
             FROM images WHERE dataset_id = $1 AND removed = 0",
        )
        .bind(id)
        .fetch_one(&self.pool)
        .await?;
        let total: i64 = counts.try_get(0)?;
        let labelled: i64 = counts.try_get(1)?;
        let per_label_rows = sqlx::query(
            "SELECT l.label, COUNT(*) FROM image_labels l JOIN images m ON m.id = l.image_id \
             WHERE m.dataset_id = $1 AND m.removed = 0 AND m.deleted = 0 GROUP BY l.label ORDER BY l.label",
        )
        .bind(id)
        .fetch_all(&self.pool)
        .await?;
        let mut per_label = BTreeMap::new();
        for lr in per_label_rows {
            per_label.insert(lr.try_get::<String, _>(0)?, lr.try_get::<i64, _>(1)?);
        }
        let skipped: String = r.try_get(5)?;
        Ok(Some(Dataset {
            id: r.try_get(0)?,
            instance_id: r.try_get(1)?,
            name: r.try_get(2)?,
            description: r.try_get(3)?,
            path: r.try_get(4)?,
            skipped: serde_json::from_str::<Vec<SkippedFile>>(&skipped)
                .map_err(|e| sqlx::Error::Decode(Box::new(e)))?,
            created_at: r.try_get(6)?,
            indexed_at: r.try_get(7)?,
            total,
            labelled,
            unlabelled: total - labelled,
            deleted: counts.try_get(2)?,
            per_label,
        }))
    }
}

/// Images written per transaction by a re-index.
pub const REINDEX_BATCH: usize = 500;

/// An image row as a re-index finds it.
struct Existing {
    id: i64,
    edited: bool,
    removed: bool,
    state: (i64, i64, i64, String),
}

/// Brings the image rows of a dataset in line with a fresh index: new files are added,
/// vanished files marked `removed` (their labels kept in case they return), and
/// annotations taken from the source files unless a user edited them in the browser.
async fn apply_index(
    tx: &mut Transaction<'_, Any>,
    dataset_id: i64,
    report: &IndexReport,
) -> sqlx::Result<()> {
    let mut existing = read_existing(tx, dataset_id).await?;
    apply_images(tx, dataset_id, &report.images, &mut existing).await?;
    finish_index(tx, dataset_id, report, &existing).await
}

/// The dataset's image rows by path.
async fn read_existing(
    tx: &mut Transaction<'_, Any>,
    dataset_id: i64,
) -> sqlx::Result<HashMap<String, Existing>> {
    let rows = sqlx::query(
        "SELECT id, rel_path, edited, removed, width, height, size_bytes, annotation FROM images WHERE dataset_id = $1",
    )
    .bind(dataset_id)
    .fetch_all(&mut **tx)
    .await?;
    let mut existing = HashMap::with_capacity(rows.len());
    for r in rows {
        existing.insert(
            r.try_get::<String, _>(1)?,
            Existing {
                id: r.try_get(0)?,
                edited: r.try_get::<i64, _>(2)? != 0,
                removed: r.try_get::<i64, _>(3)? != 0,
                state: (r.try_get(4)?, r.try_get(5)?, r.try_get(6)?, r.try_get(7)?),
            },
        );
    }
    Ok(existing)
}

/// Writes `images` of a fresh index; each one found is taken out of `existing`.
async fn apply_images(
    tx: &mut Transaction<'_, Any>,
    dataset_id: i64,
    images: &[crate::indexer::IndexedImage],
    existing: &mut HashMap<String, Existing>,
) -> sqlx::Result<()> {
    let now = now_rfc3339();
    for img in images {
        let (w, h, size) = (
            i64::from(img.width),
            i64::from(img.height),
            img.size.cast_signed(),
        );
        let json = annotation_json(&img.annotation);
        let resize = |id: i64| {
            sqlx::query(
                "UPDATE images SET width = $1, height = $2, size_bytes = $3, removed = 0 WHERE id = $4",
            )
            .bind(w)
            .bind(h)
            .bind(size)
            .bind(id)
        };
        match existing.remove(&img.key) {
            Some(e) if e.edited => {
                if e.removed || (e.state.0, e.state.1, e.state.2) != (w, h, size) {
                    resize(e.id).execute(&mut **tx).await?;
                }
            }
            Some(e) => {
                if e.removed || e.state != (w, h, size, json.clone()) {
                    // Only while nobody has edited it: an edit saved since the rows were
                    // read wins over the source files.
                    let written = sqlx::query(
                        "UPDATE images SET width = $1, height = $2, size_bytes = $3, annotation = $4, \
                         labelled = $5, removed = 0, updated_at = $6, revision = revision + 1 \
                         WHERE id = $7 AND edited = 0",
                    )
                    .bind(w).bind(h).bind(size).bind(&json)
                    .bind(i64::from(!img.annotation.is_empty())).bind(&now).bind(e.id)
                    .execute(&mut **tx).await?
                    .rows_affected();
                    if written == 1 {
                        replace_labels(tx, e.id, &img.annotation).await?;
                    } else {
                        resize(e.id).execute(&mut **tx).await?;
                    }
                }
            }
            None => {
                let id: i64 = sqlx::query(
                    "INSERT INTO images (dataset_id, rel_path, width, height, size_bytes, annotation, labelled, updated_at) \
                     VALUES ($1, $2, $3, $4, $5, $6, $7, $8) RETURNING id",
                )
                .bind(dataset_id).bind(&img.key).bind(w).bind(h).bind(size).bind(&json)
                .bind(i64::from(!img.annotation.is_empty())).bind(&now)
                .fetch_one(&mut **tx).await?
                .try_get(0)?;
                replace_labels(tx, id, &img.annotation).await?;
            }
        }
    }
    Ok(())
}

/// Marks the rows no file was found for as removed and records the skip report.
async fn finish_index(
    tx: &mut Transaction<'_, Any>,
    dataset_id: i64,
    report: &IndexReport,
    existing: &HashMap<String, Existing>,
) -> sqlx::Result<()> {
    for gone in existing.values().filter(|e| !e.removed) {
        sqlx::query("UPDATE images SET removed = 1 WHERE id = $1")
            .bind(gone.id)
            .execute(&mut **tx)
            .await?;
    }
    let skipped =
        serde_json::to_string(&report.skipped).map_err(|e| sqlx::Error::Encode(Box::new(e)))?;
    sqlx::query("UPDATE datasets SET skipped = $1, indexed_at = $2 WHERE id = $3")
        .bind(skipped)
        .bind(now_rfc3339())
        .bind(dataset_id)
        .execute(&mut **tx)
        .await?;
    Ok(())
}

pub(crate) fn annotation_json(a: &Annotation) -> String {
    serde_json::to_string(a).unwrap_or_else(|_| "{}".to_owned())
}

/// Rewrites the label index of one image from its annotation.
pub(crate) async fn replace_labels(
    tx: &mut Transaction<'_, Any>,
    image_id: i64,
    a: &Annotation,
) -> sqlx::Result<()> {
    sqlx::query("DELETE FROM image_labels WHERE image_id = $1")
        .bind(image_id)
        .execute(&mut **tx)
        .await?;
    for label in a.label_set() {
        sqlx::query("INSERT INTO image_labels (image_id, label) VALUES ($1, $2)")
            .bind(image_id)
            .bind(&label)
            .execute(&mut **tx)
            .await?;
        // A label in use is a tag of the dataset.
        sqlx::query(
            "INSERT INTO dataset_labels (dataset_id, name) SELECT dataset_id, $2 FROM images WHERE id = $1 \
             ON CONFLICT DO NOTHING",
        )
        .bind(image_id)
        .bind(&label)
        .execute(&mut **tx)
        .await?;
    }
    Ok(())
}

impl Db {
    /// Deletes a dataset's rows (the files in storage stay untouched).
    pub async fn delete_dataset(&self, id: i64) -> sqlx::Result<bool> {
        let mut tx = self.pool.begin().await?;
        for table in ["prelabels", "prelabel_runs"] {
            sqlx::query(&format!("DELETE FROM {table} WHERE dataset_id = $1"))
                .bind(id)
                .execute(&mut *tx)
                .await?;
        }
        sqlx::query("DELETE FROM image_labels WHERE image_id IN (SELECT id FROM images WHERE dataset_id = $1)")
            .bind(id)
            .execute(&mut *tx)
            .await?;
        sqlx::query("DELETE FROM images WHERE dataset_id = $1")
            .bind(id)
            .execute(&mut *tx)
            .await?;
        let n = sqlx::query("DELETE FROM datasets WHERE id = $1")
            .bind(id)
            .execute(&mut *tx)
            .await?
            .rows_affected();
        tx.commit().await?;
        Ok(n > 0)
    }
}
