//! Instances: the unit that owns datasets, tasks, models and services.

use shared::InstanceType;
use shared::api::Instance;
use sqlx::Row;
use sqlx::any::AnyRow;

use super::{Db, now_rfc3339};

const SELECT: &str = "SELECT i.id, i.kind, i.name, i.description, i.created_at, \
     (SELECT COUNT(*) FROM datasets d WHERE d.instance_id = i.id), \
     (SELECT COUNT(*) FROM images m JOIN datasets d ON d.id = m.dataset_id \
        WHERE d.instance_id = i.id AND m.removed = 0 AND m.deleted = 0) \
     FROM instances i";

fn from_row(r: &AnyRow) -> sqlx::Result<Instance> {
    let kind: String = r.try_get(1)?;
    Ok(Instance {
        id: r.try_get(0)?,
        kind: InstanceType::parse(&kind)
            .ok_or_else(|| sqlx::Error::Decode(format!("unknown instance type {kind:?}").into()))?,
        name: r.try_get(2)?,
        description: r.try_get(3)?,
        created_at: r.try_get(4)?,
        dataset_count: r.try_get(5)?,
        image_count: r.try_get(6)?,
    })
}

impl Db {
    pub async fn create_instance(
        &self,
        kind: InstanceType,
        name: &str,
        description: &str,
    ) -> sqlx::Result<i64> {
        sqlx::query("INSERT INTO instances (name, kind, description, created_at) VALUES ($1, $2, $3, $4) RETURNING id")
            .bind(name)
            .bind(kind.as_str())
            .bind(description)
            .bind(now_rfc3339())
            .fetch_one(&self.pool)
            .await?
            .try_get(0)
    }

    pub async fn instance(&self, id: i64) -> sqlx::Result<Option<Instance>> {
        sqlx::query(&format!("{SELECT} WHERE i.id = $1"))
            .bind(id)
            .fetch_optional(&self.pool)
            .await?
            .as_ref()
            .map(from_row)
            .transpose()
    }

    pub async fn instances(&self) -> sqlx::Result<Vec<Instance>> {
        sqlx::query(&format!("{SELECT} ORDER BY i.id DESC"))
            .fetch_all(&self.pool)
            .await?
            .iter()
            .map(from_row)
            .collect()
    }

    pub async fn update_instance(
        &self,
        id: i64,
        name: &str,
        description: &str,
    ) -> sqlx::Result<()> {
        sqlx::query("UPDATE instances SET name = $1, description = $2 WHERE id = $3")
            .bind(name)
            .bind(description)
            .bind(id)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    /// Artifact keys of the instance's model versions.
    pub async fn instance_artifacts(&self, id: i64) -> sqlx::Result<Vec<String>> {
        sqlx::query("SELECT artifact FROM models WHERE instance_id = $1")
            .bind(id)
            .fetch_all(&self.pool)
            .await?
            .iter()
            .map(|r| r.try_get(0))
            .collect()
    }

    /// Ids of every image of the instance's datasets.
    pub async fn instance_image_ids(&self, id: i64) -> sqlx::Result<Vec<i64>> {
        sqlx::query(
            "SELECT m.id FROM images m JOIN datasets d ON d.id = m.dataset_id WHERE d.instance_id = $1",
        )
        .bind(id)
        .fetch_all(&self.pool)
        .await?
        .iter()
        .map(|r| r.try_get(0))
        .collect()
    }

    /// Deletes an instance with its datasets and annotations (the images in storage stay).
    pub async fn delete_instance(&self, id: i64) -> sqlx::Result<bool> {
        let mut tx = self.pool.begin().await?;
        for table in ["prelabels", "prelabel_runs"] {
            sqlx::query(&format!(
                "DELETE FROM {table} WHERE dataset_id IN (SELECT id FROM datasets WHERE instance_id = $1)"
            ))
            .bind(id)
            .execute(&mut *tx)
            .await?;
        }
        // Explicit deletes rather than relying on cascades, which SQLite applies only with
        // foreign keys enabled on that connection.
        sqlx::query("DELETE FROM image_labels WHERE image_id IN (SELECT m.id FROM images m JOIN datasets d ON d.id = m.dataset_id WHERE d.instance_id = $1)")
            .bind(id).execute(&mut *tx).await?;
        sqlx::query("DELETE FROM images WHERE dataset_id IN (SELECT id FROM datasets WHERE instance_id = $1)")
            .bind(id).execute(&mut *tx).await?;
        sqlx::query("DELETE FROM dataset_labels WHERE dataset_id IN (SELECT id FROM datasets WHERE instance_id = $1)")
            .bind(id)
            .execute(&mut *tx)
            .await?;
        sqlx::query("DELETE FROM datasets WHERE instance_id = $1")
            .bind(id)
            .execute(&mut *tx)
            .await?;
        for table in [
            "recall_rows",
            "recall_strategies",
            "recall_filters",
            "services",
        ] {
            sqlx::query(&format!("DELETE FROM {table} WHERE instance_id = $1"))
                .bind(id)
                .execute(&mut *tx)
                .await?;
        }
        sqlx::query("DELETE FROM grants WHERE instance_id = $1")
            .bind(id)
            .execute(&mut *tx)
            .await?;
        let n = sqlx::query("DELETE FROM instances WHERE id = $1")
            .bind(id)
            .execute(&mut *tx)
            .await?
            .rows_affected();
        tx.commit().await?;
        Ok(n > 0)
    }
}
