//! Recall tables, strategies, filters and services.

use shared::recall::{
    Filter, FilterKind, RecallTable, Service, Strategy, StrategyKind, TableInfo, TableRow,
};
use sqlx::any::AnyRow;
use sqlx::{Any, Row, Transaction};

use super::{Db, now_rfc3339};

/// Rows per multi-row INSERT: 4 parameters each stays far below PostgreSQL's 65,535.
const INSERT_BATCH: usize = 500;

fn strategy_kind(s: &str) -> Option<StrategyKind> {
    serde_json::from_value(serde_json::Value::String(s.to_owned())).ok()
}

fn kind_str<T: serde::Serialize>(k: &T) -> String {
    serde_json::to_value(k)
        .ok()
        .and_then(|v| v.as_str().map(str::to_owned))
        .unwrap_or_default()
}

fn decode<T>(v: Option<T>, what: &str) -> sqlx::Result<T> {
    v.ok_or_else(|| sqlx::Error::Decode(format!("unknown {what}").into()))
}

async fn bump(tx: &mut Transaction<'_, Any>, instance_id: i64) -> sqlx::Result<()> {
    sqlx::query("UPDATE instances SET recall_version = recall_version + 1 WHERE id = $1")
        .bind(instance_id)
        .execute(&mut **tx)
        .await?;
    Ok(())
}

fn service_from_row(r: &AnyRow) -> sqlx::Result<Service> {
    let name: String = r.try_get(1)?;
    let kind: String = r.try_get(3)?;
    Ok(Service {
        id: r.try_get(0)?,
        endpoint: format!("/api/{kind}/{name}"),
        name,
        instance_id: r.try_get(2)?,
        kind,
        replicas: r.try_get(4)?,
        created_at: r.try_get(5)?,
        model_id: r.try_get(6)?,
        status: None,
        token: None,
    })
}

impl Db {
    /// Replaces (or, with `append`, adds to) a table in one transaction.
    pub async fn import_table(
        &self,
        instance_id: i64,
        table: RecallTable,
        rows: &[(String, String)],
        append: bool,
    ) -> sqlx::Result<i64> {
        let mut tx = self.pool.begin().await?;
        if !append {
            sqlx::query("DELETE FROM recall_rows WHERE instance_id = $1 AND tbl = $2")
                .bind(instance_id)
                .bind(table.as_str())
                .execute(&mut *tx)
                .await?;
        }
        insert_rows(&mut tx, instance_id, table, rows).await?;
        bump(&mut tx, instance_id).await?;
        let n: i64 =
            sqlx::query("SELECT COUNT(*) FROM recall_rows WHERE instance_id = $1 AND tbl = $2")
                .bind(instance_id)
                .bind(table.as_str())
                .fetch_one(&mut *tx)
                .await?
                .try_get(0)?;
        tx.commit().await?;
        Ok(n)
    }

    pub async fn table_infos(
        &self,
        instance_id: i64,
        preview: i64,
    ) -> sqlx::Result<Vec<TableInfo>> {
        let mut out = Vec::new();
        for table in RecallTable::ALL {
            let rows: i64 =
                sqlx::query("SELECT COUNT(*) FROM recall_rows WHERE instance_id = $1 AND tbl = $2")
                    .bind(instance_id)
                    .bind(table.as_str())
                    .fetch_one(&self.pool)
                    .await?
                    .try_get(0)?;
            let preview = sqlx::query("SELECT key, value FROM recall_rows WHERE instance_id = $1 AND tbl = $2 ORDER BY key LIMIT $3")
                .bind(instance_id)
                .bind(table.as_str())
                .bind(preview)
                .fetch_all(&self.pool)
                .await?
                .iter()
                .map(|r| Ok(TableRow { key: r.try_get(0)?, value: r.try_get(1)? }))
                .collect::<sqlx::Result<_>>()?;
            out.push(TableInfo {
                table,
                rows,
                preview,
            });
        }
        Ok(out)
    }

    /// Every row of an instance's tables: `(table, key, value)`.
    pub async fn recall_rows(
        &self,
        instance_id: i64,
    ) -> sqlx::Result<Vec<(RecallTable, String, String)>> {
        sqlx::query("SELECT tbl, key, value FROM recall_rows WHERE instance_id = $1")
            .bind(instance_id)
            .fetch_all(&self.pool)
            .await?
            .iter()
            .map(|r| {
                let t: String = r.try_get(0)?;
                Ok((
                    decode(RecallTable::parse(&t), "table")?,
                    r.try_get(1)?,
                    r.try_get(2)?,
                ))
            })
            .collect()
    }

    pub async fn strategies(&self, instance_id: i64) -> sqlx::Result<Vec<Strategy>> {
        sqlx::query("SELECT id, name, kind, count, position FROM recall_strategies WHERE instance_id = $1 ORDER BY position, id")
            .bind(instance_id)
            .fetch_all(&self.pool)
            .await?
            .iter()
            .map(|r| {
                let kind: String = r.try_get(2)?;
                Ok(Strategy {
                    id: r.try_get(0)?,
                    name: r.try_get(1)?,
                    kind: decode(strategy_kind(&kind), "strategy type")?,
                    count: r.try_get(3)?,
                    position: r.try_get(4)?,
                })
            })
            .collect()
    }

    /// Adds a strategy at the end of the merge order.
    pub async fn create_strategy(
        &self,
        instance_id: i64,
        name: &str,
        kind: StrategyKind,
        count: i64,
    ) -> sqlx::Result<i64> {
        let mut tx = self.pool.begin().await?;
        let position: i64 =
            sqlx::query("SELECT COUNT(*) FROM recall_strategies WHERE instance_id = $1")
                .bind(instance_id)
                .fetch_one(&mut *tx)
                .await?
                .try_get(0)?;
        let id: i64 = sqlx::query("INSERT INTO recall_strategies (instance_id, name, kind, count, position) VALUES ($1, $2, $3, $4, $5) RETURNING id")
            .bind(instance_id)
            .bind(name)
            .bind(kind_str(&kind))
            .bind(count)
            .bind(position)
            .fetch_one(&mut *tx)
            .await?
            .try_get(0)?;
        bump(&mut tx, instance_id).await?;
        tx.commit().await?;
        Ok(id)
    }

    pub async fn delete_strategy(&self, instance_id: i64, name: &str) -> sqlx::Result<bool> {
        self.delete_named("recall_strategies", instance_id, name)
            .await
    }

    pub async fn filters(&self, instance_id: i64) -> sqlx::Result<Vec<Filter>> {
        sqlx::query("SELECT id, name, kind FROM recall_filters WHERE instance_id = $1 ORDER BY id")
            .bind(instance_id)
            .fetch_all(&self.pool)
            .await?
            .iter()
            .map(|r| {
                let kind: String = r.try_get(2)?;
                let kind: Option<FilterKind> =
                    serde_json::from_value(serde_json::Value::String(kind)).ok();
                Ok(Filter {
                    id: r.try_get(0)?,
                    name: r.try_get(1)?,
                    kind: decode(kind, "filter type")?,
                })
            })
            .collect()
    }

    pub async fn create_filter(
        &self,
        instance_id: i64,
        name: &str,
        kind: FilterKind,
    ) -> sqlx::Result<i64> {
        let mut tx = self.pool.begin().await?;
        let id: i64 = sqlx::query(
            "INSERT INTO recall_filters (instance_id, name, kind) VALUES ($1, $2, $3) RETURNING id",
        )
        .bind(instance_id)
        .bind(name)
        .bind(kind_str(&kind))
        .fetch_one(&mut *tx)
        .await?
        .try_get(0)?;
        bump(&mut tx, instance_id).await?;
        tx.commit().await?;
        Ok(id)
    }

    pub async fn delete_filter(&self, instance_id: i64, name: &str) -> sqlx::Result<bool> {
        self.delete_named("recall_filters", instance_id, name).await
    }

    async fn delete_named(&self, table: &str, instance_id: i64, name: &str) -> sqlx::Result<bool> {
        let mut tx = self.pool.begin().await?;
        let n = sqlx::query(&format!(
            "DELETE FROM {table} WHERE instance_id = $1 AND name = $2"
        ))
        .bind(instance_id)
        .bind(name)
        .execute(&mut *tx)
        .await?
        .rows_affected();
        bump(&mut tx, instance_id).await?;
        tx.commit().await?;
        Ok(n > 0)
    }

    pub async fn recall_version(&self, instance_id: i64) -> sqlx::Result<Option<i64>> {
        sqlx::query("SELECT recall_version FROM instances WHERE id = $1")
            .bind(instance_id)
            .fetch_optional(&self.pool)
            .await?
            .map(|r| r.try_get(0))
            .transpose()
    }

    pub async fn create_service(
        &self,
        name: &str,
        instance_id: i64,
        kind: &str,
        token_hash: &str,
        replicas: i64,
        model_id: Option<i64>,
    ) -> sqlx::Result<i64> {
        sqlx::query("INSERT INTO services (name, instance_id, kind, token_hash, replicas, created_at, model_id) VALUES ($1, $2, $3, $4, $5, $6, $7) RETURNING id")
            .bind(name)
            .bind(instance_id)
            .bind(kind)
            .bind(token_hash)
            .bind(replicas)
            .bind(now_rfc3339())
            .bind(model_id)
            .fetch_one(&self.pool)
            .await?
            .try_get(0)
    }

    pub async fn service(&self, name: &str) -> sqlx::Result<Option<Service>> {
        sqlx::query("SELECT id, name, instance_id, kind, replicas, created_at, model_id FROM services WHERE name = $1")
            .bind(name)
            .fetch_optional(&self.pool)
            .await?
            .as_ref()
            .map(service_from_row)
            .transpose()
    }

    pub async fn services(&self, instance_id: i64) -> sqlx::Result<Vec<Service>> {
        sqlx::query("SELECT id, name, instance_id, kind, replicas, created_at, model_id FROM services WHERE instance_id = $1 ORDER BY id")
            .bind(instance_id)
            .fetch_all(&self.pool)
            .await?
            .iter()
            .map(service_from_row)
            .collect()
    }

    /// `(instance_id, token_hash, recall_version)` of a recall service.
    pub async fn recall_service_auth(
        &self,
        name: &str,
    ) -> sqlx::Result<Option<(i64, String, i64)>> {
        sqlx::query(
            "SELECT s.instance_id, s.token_hash, i.recall_version FROM services s JOIN instances i ON i.id = s.instance_id \
             WHERE s.name = $1 AND s.kind = 'recall'",
        )
        .bind(name)
        .fetch_optional(&self.pool)
        .await?
        .map(|r| Ok((r.try_get(0)?, r.try_get(1)?, r.try_get(2)?)))
        .transpose()
    }

    /// `(token_hash, model_id, replicas)` of a predict service.
    pub async fn predict_service_auth(
        &self,
        name: &str,
    ) -> sqlx::Result<Option<(String, i64, i64)>> {
        sqlx::query(
            "SELECT token_hash, model_id, replicas FROM services WHERE name = $1 AND kind = 'predict'",
        )
        .bind(name)
        .fetch_optional(&self.pool)
        .await?
        .map(|r| Ok((r.try_get(0)?, r.try_get(1)?, r.try_get(2)?)))
        .transpose()
    }

    /// Points a predict service at another model version and/or replica count.
    pub async fn update_predict_service(
        &self,
        name: &str,
        model_id: i64,
        replicas: i64,
    ) -> sqlx::Result<bool> {
        Ok(sqlx::query(
            "UPDATE services SET model_id = $2, replicas = $3 WHERE name = $1 AND kind = 'predict'",
        )
        .bind(name)
        .bind(model_id)
        .bind(replicas)
        .execute(&self.pool)
        .await?
        .rows_affected()
            > 0)
    }

    pub async fn delete_service(&self, name: &str) -> sqlx::Result<bool> {
        let n = sqlx::query("DELETE FROM services WHERE name = $1")
            .bind(name)
            .execute(&self.pool)
            .await?
            .rows_affected();
        Ok(n > 0)
    }
}

/// Replaces user_item and item_item with a CF build's output (within the caller's
/// transaction, which finishes the build).
pub(super) async fn replace_cf_rows(
    tx: &mut Transaction<'_, Any>,
    instance_id: i64,
    user_item: &[(String, String)],
    item_item: &[(String, String)],
) -> sqlx::Result<()> {
    for (table, rows) in [
        (RecallTable::UserItem, user_item),
        (RecallTable::ItemItem, item_item),
    ] {
        sqlx::query("DELETE FROM recall_rows WHERE instance_id = $1 AND tbl = $2")
            .bind(instance_id)
            .bind(table.as_str())
            .execute(&mut **tx)
            .await?;
        insert_rows(tx, instance_id, table, rows).await?;
    }
    bump(tx, instance_id).await
}

async fn insert_rows(
    tx: &mut Transaction<'_, Any>,
    instance_id: i64,
    table: RecallTable,
    rows: &[(String, String)],
) -> sqlx::Result<()> {
    for batch in rows.chunks(INSERT_BATCH) {
        let mut sql =
            String::from("INSERT INTO recall_rows (instance_id, tbl, key, value) VALUES ");
        for k in 0..batch.len() {
            let p = k * 4;
            if k > 0 {
                sql.push(',');
            }
            sql.push_str(&format!("(${}, ${}, ${}, ${})", p + 1, p + 2, p + 3, p + 4));
        }
        // Appending a key that exists replaces its value.
        sql.push_str(" ON CONFLICT (instance_id, tbl, key) DO UPDATE SET value = excluded.value");
        let mut q = sqlx::query(&sql);
        for (key, value) in batch {
            q = q
                .bind(instance_id)
                .bind(table.as_str())
                .bind(key)
                .bind(value);
        }
        q.execute(&mut **tx).await?;
    }
    Ok(())
}
