//! Preview links: one row per link; the token is derived from the row and the server secret.

use sqlx::Row;
use sqlx::any::AnyRow;

use super::{Db, now_rfc3339};

#[derive(Debug, Clone)]
pub struct PreviewRow {
    pub id: i64,
    pub model_id: i64,
    pub created_at: String,
    /// Unix seconds.
    pub expires_at: i64,
    pub revoked: bool,
}

const COLUMNS: &str = "id, model_id, created_at, expires_at, revoked_at";

fn from_row(r: &AnyRow) -> sqlx::Result<PreviewRow> {
    Ok(PreviewRow {
        id: r.try_get(0)?,
        model_id: r.try_get(1)?,
        created_at: r.try_get(2)?,
        expires_at: r.try_get(3)?,
        revoked: r.try_get::<Option<String>, _>(4)?.is_some(),
    })
}

impl Db {
    pub async fn create_preview_link(
        &self,
        model_id: i64,
        created_by: i64,
        expires_at: i64,
    ) -> sqlx::Result<PreviewRow> {
        let created_at = now_rfc3339();
        let id: i64 = sqlx::query(
            "INSERT INTO preview_links (model_id, created_by, created_at, expires_at) \
             VALUES ($1, $2, $3, $4) RETURNING id",
        )
        .bind(model_id)
        .bind(created_by)
        .bind(&created_at)
        .bind(expires_at)
        .fetch_one(&self.pool)
        .await?
        .try_get(0)?;
        Ok(PreviewRow {
            id,
            model_id,
            created_at,
            expires_at,
            revoked: false,
        })
    }

    /// A model's links, newest first.
    pub async fn preview_links(&self, model_id: i64) -> sqlx::Result<Vec<PreviewRow>> {
        sqlx::query(&format!(
            "SELECT {COLUMNS} FROM preview_links WHERE model_id = $1 ORDER BY id DESC"
        ))
        .bind(model_id)
        .fetch_all(&self.pool)
        .await?
        .iter()
        .map(from_row)
        .collect()
    }

    pub async fn preview_link(&self, id: i64) -> sqlx::Result<Option<PreviewRow>> {
        sqlx::query(&format!(
            "SELECT {COLUMNS} FROM preview_links WHERE id = $1"
        ))
        .bind(id)
        .fetch_optional(&self.pool)
        .await?
        .as_ref()
        .map(from_row)
        .transpose()
    }

    /// Revokes a link for good; `false` when it was already revoked (or does not exist).
    pub async fn revoke_preview_link(&self, id: i64) -> sqlx::Result<bool> {
        Ok(sqlx::query(
            "UPDATE preview_links SET revoked_at = $1 WHERE id = $2 AND revoked_at IS NULL",
        )
        .bind(now_rfc3339())
        .bind(id)
        .execute(&self.pool)
        .await?
        .rows_affected()
            > 0)
    }
}
