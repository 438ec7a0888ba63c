//! Images of a dataset and their annotations.

use shared::api::{Annotation, Image, ImageStatus};
use sqlx::Row;
use sqlx::any::AnyRow;

use super::datasets::{annotation_json, replace_labels};
use super::{Db, now_rfc3339};

const COLUMNS: &str = "m.id, m.dataset_id, m.rel_path, m.width, m.height, m.size_bytes, m.labelled, m.deleted, m.annotation, m.updated_at, m.revision";

fn from_row(r: &AnyRow) -> sqlx::Result<Image> {
    let json: String = r.try_get(8)?;
    Ok(Image {
        id: r.try_get(0)?,
        dataset_id: r.try_get(1)?,
        path: r.try_get(2)?,
        width: r.try_get(3)?,
        height: r.try_get(4)?,
        size_bytes: r.try_get(5)?,
        labelled: r.try_get::<i64, _>(6)? != 0,
        deleted: r.try_get::<i64, _>(7)? != 0,
        annotation: serde_json::from_str(&json).map_err(|e| sqlx::Error::Decode(Box::new(e)))?,
        updated_at: r.try_get(9)?,
        revision: r.try_get(10)?,
    })
}

pub struct ImageFilter<'a> {
    pub label: Option<&'a str>,
    pub status: ImageStatus,
    /// 1-based.
    pub page: i64,
    pub per_page: i64,
}

impl Db {
    /// One page of a dataset's images in path order, and the number matching the filter.
    pub async fn images(
        &self,
        dataset_id: i64,
        f: &ImageFilter<'_>,
    ) -> sqlx::Result<(Vec<Image>, i64)> {
        let status = match f.status {
            ImageStatus::All => "m.deleted = 0",
            ImageStatus::Labelled => "m.deleted = 0 AND m.labelled = 1",
            ImageStatus::Unlabelled => "m.deleted = 0 AND m.labelled = 0",
            ImageStatus::Deleted => "m.deleted = 1",
        };
        // The label filter adds a parameter, so the paging placeholders move along.
        let (label, next) = if f.label.is_some() {
            (
                " AND EXISTS (SELECT 1 FROM image_labels l WHERE l.image_id = m.id AND l.label = $2)",
                3,
            )
        } else {
            ("", 2)
        };
        let filter =
            format!("FROM images m WHERE m.dataset_id = $1 AND m.removed = 0 AND {status}{label}");
        let count_sql = format!("SELECT COUNT(*) {filter}");
        let mut count = sqlx::query(&count_sql).bind(dataset_id);
        if let Some(l) = f.label {
            count = count.bind(l);
        }
        let total: i64 = count.fetch_one(&self.pool).await?.try_get(0)?;
        let sql = format!(
            "SELECT {COLUMNS} {filter} ORDER BY m.rel_path LIMIT ${next} OFFSET ${}",
            next + 1
        );
        let mut page = sqlx::query(&sql).bind(dataset_id);
        if let Some(l) = f.label {
            page = page.bind(l);
        }
        let items = page
            .bind(f.per_page)
            .bind((f.page - 1) * f.per_page)
            .fetch_all(&self.pool)
            .await?
            .iter()
            .map(from_row)
            .collect::<sqlx::Result<_>>()?;
        Ok((items, total))
    }

    /// Every labelled, not deleted image of a dataset (for export).
    pub async fn labelled_images(&self, dataset_id: i64) -> sqlx::Result<Vec<Image>> {
        self.present_images(dataset_id, "AND m.labelled = 1").await
    }

    /// Every not deleted image of a dataset, labelled or not (for suggestions).
    pub async fn current_images(&self, dataset_id: i64) -> sqlx::Result<Vec<Image>> {
        self.present_images(dataset_id, "").await
    }

    /// The dataset's images that are neither removed nor deleted and match `condition`, in
    /// path order, in one query.
    async fn present_images(&self, dataset_id: i64, condition: &str) -> sqlx::Result<Vec<Image>> {
        sqlx::query(&format!(
            "SELECT {COLUMNS} FROM images m WHERE m.dataset_id = $1 AND m.removed = 0 AND m.deleted = 0 \
             {condition} ORDER BY m.rel_path"
        ))
        .bind(dataset_id)
        .fetch_all(&self.pool)
        .await?
        .iter()
        .map(from_row)
        .collect()
    }

    pub async fn image(&self, id: i64) -> sqlx::Result<Option<Image>> {
        sqlx::query(&format!(
            "SELECT {COLUMNS} FROM images m WHERE m.id = $1 AND m.removed = 0"
        ))
        .bind(id)
        .fetch_optional(&self.pool)
        .await?
        .as_ref()
        .map(from_row)
        .transpose()
    }

    /// Saves an annotation and its label index in one transaction, bumping the revision;
    /// marks the image as edited so re-indexing keeps it. With `expected`, saves only if the
    /// image is still at that revision (checked in the UPDATE itself): `false` when another
    /// change came first.
    pub async fn save_annotation(
        &self,
        image_id: i64,
        a: &Annotation,
        expected: Option<i64>,
    ) -> sqlx::Result<bool> {
        let mut tx = self.pool.begin().await?;
        let sql = match expected {
            Some(_) => {
                "UPDATE images SET annotation = $1, labelled = $2, edited = 1, updated_at = $3, \
                        revision = revision + 1 WHERE id = $4 AND revision = $5"
            }
            None => {
                "UPDATE images SET annotation = $1, labelled = $2, edited = 1, updated_at = $3, \
                     revision = revision + 1 WHERE id = $4"
            }
        };
        let mut q = sqlx::query(sql)
            .bind(annotation_json(a))
            .bind(i64::from(!a.is_empty()))
            .bind(now_rfc3339())
            .bind(image_id);
        if let Some(r) = expected {
            q = q.bind(r);
        }
        if q.execute(&mut *tx).await?.rows_affected() == 0 {
            return Ok(false);
        }
        replace_labels(&mut tx, image_id, a).await?;
        tx.commit().await?;
        Ok(true)
    }

    pub async fn set_image_deleted(&self, image_id: i64, deleted: bool) -> sqlx::Result<()> {
        sqlx::query("UPDATE images SET deleted = $1, updated_at = $2 WHERE id = $3")
            .bind(i64::from(deleted))
            .bind(now_rfc3339())
            .bind(image_id)
            .execute(&self.pool)
            .await?;
        Ok(())
    }
}
