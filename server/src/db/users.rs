//! Users, their permission grants, and session tokens.

use shared::Permission;
use shared::api::{Grant, User};
use sqlx::Row;

use super::{Db, now_rfc3339, unix_now};

/// A signed-in user as the permission checks see it.
#[derive(Debug, Clone)]
pub struct Principal {
    pub id: i64,
    pub username: String,
    pub is_admin: bool,
    pub grants: Vec<Grant>,
}

impl Principal {
    /// Whether the user holds `perm` on `instance` (or on every instance).
    pub fn can(&self, perm: Permission, instance: Option<i64>) -> bool {
        self.is_admin
            || self.grants.iter().any(|g| {
                g.permission == perm && (g.instance_id.is_none() || g.instance_id == instance)
            })
    }

    /// Whether the user holds `perm` on every instance.
    pub fn can_everywhere(&self, perm: Permission) -> bool {
        self.can(perm, None)
    }
}

pub struct NewUser<'a> {
    pub username: &'a str,
    pub password_hash: &'a str,
    pub is_admin: bool,
    pub grants: &'a [Grant],
}

impl Db {
    pub async fn user_count(&self) -> sqlx::Result<i64> {
        sqlx::query("SELECT COUNT(*) FROM users")
            .fetch_one(&self.pool)
            .await?
            .try_get(0)
    }

    /// Creates a user with its grants in one transaction; returns its id.
    pub async fn create_user(&self, u: &NewUser<'_>) -> sqlx::Result<i64> {
        let mut tx = self.pool.begin().await?;
        let id: i64 = sqlx::query(
            "INSERT INTO users (username, password_hash, is_admin, created_at) VALUES ($1, $2, $3, $4) RETURNING id",
        )
        .bind(u.username)
        .bind(u.password_hash)
        .bind(i64::from(u.is_admin))
        .bind(now_rfc3339())
        .fetch_one(&mut *tx)
        .await?
        .try_get(0)?;
        insert_grants(&mut tx, id, u.grants).await?;
        tx.commit().await?;
        Ok(id)
    }

    /// Replaces a user's grants; `false` if there is no such user.
    pub async fn set_grants(&self, user_id: i64, grants: &[Grant]) -> sqlx::Result<bool> {
        let mut tx = self.pool.begin().await?;
        let exists = sqlx::query("SELECT id FROM users WHERE id = $1")
            .bind(user_id)
            .fetch_optional(&mut *tx)
            .await?
            .is_some();
        if !exists {
            return Ok(false);
        }
        sqlx::query("DELETE FROM grants WHERE user_id = $1")
            .bind(user_id)
            .execute(&mut *tx)
            .await?;
        insert_grants(&mut tx, user_id, grants).await?;
        tx.commit().await?;
        Ok(true)
    }

    /// `(id, password_hash)` of a user by name.
    pub async fn password_hash(&self, username: &str) -> sqlx::Result<Option<(i64, String)>> {
        let row = sqlx::query("SELECT id, password_hash FROM users WHERE username = $1")
            .bind(username)
            .fetch_optional(&self.pool)
            .await?;
        row.map(|r| Ok((r.try_get(0)?, r.try_get(1)?))).transpose()
    }

    pub async fn create_session(
        &self,
        token_hash: &str,
        user_id: i64,
        ttl_secs: i64,
    ) -> sqlx::Result<()> {
        sqlx::query("INSERT INTO sessions (token_hash, user_id, created_at, expires_at) VALUES ($1, $2, $3, $4)")
            .bind(token_hash)
            .bind(user_id)
            .bind(now_rfc3339())
            .bind(unix_now() + ttl_secs)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    pub async fn delete_session(&self, token_hash: &str) -> sqlx::Result<()> {
        sqlx::query("DELETE FROM sessions WHERE token_hash = $1")
            .bind(token_hash)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    /// The user of an unexpired session token.
    pub async fn session_principal(&self, token_hash: &str) -> sqlx::Result<Option<Principal>> {
        let row = sqlx::query(
            "SELECT u.id, u.username, u.is_admin FROM sessions s JOIN users u ON u.id = s.user_id \
             WHERE s.token_hash = $1 AND s.expires_at > $2",
        )
        .bind(token_hash)
        .bind(unix_now())
        .fetch_optional(&self.pool)
        .await?;
        let Some(row) = row else { return Ok(None) };
        let id: i64 = row.try_get(0)?;
        Ok(Some(Principal {
            id,
            username: row.try_get(1)?,
            is_admin: row.try_get::<i64, _>(2)? != 0,
            grants: self.grants(id).await?,
        }))
    }

    async fn grants(&self, user_id: i64) -> sqlx::Result<Vec<Grant>> {
        let rows = sqlx::query("SELECT permission, instance_id FROM grants WHERE user_id = $1 ORDER BY permission, instance_id")
            .bind(user_id)
            .fetch_all(&self.pool)
            .await?;
        let mut out = Vec::new();
        for r in rows {
            let name: String = r.try_get(0)?;
            let instance: i64 = r.try_get(1)?;
            if let Some(permission) = Permission::parse(&name) {
                out.push(Grant {
                    permission,
                    instance_id: (instance != 0).then_some(instance),
                });
            }
        }
        Ok(out)
    }

    pub async fn user(&self, id: i64) -> sqlx::Result<Option<User>> {
        let row = sqlx::query("SELECT id, username, is_admin, created_at FROM users WHERE id = $1")
            .bind(id)
            .fetch_optional(&self.pool)
            .await?;
        match row {
            Some(r) => Ok(Some(self.user_from_row(&r).await?)),
            None => Ok(None),
        }
    }

    pub async fn users(&self) -> sqlx::Result<Vec<User>> {
        let rows = sqlx::query("SELECT id, username, is_admin, created_at FROM users ORDER BY id")
            .fetch_all(&self.pool)
            .await?;
        let mut out = Vec::with_capacity(rows.len());
        for r in &rows {
            out.push(self.user_from_row(r).await?);
        }
        Ok(out)
    }

    async fn user_from_row(&self, r: &sqlx::any::AnyRow) -> sqlx::Result<User> {
        let id: i64 = r.try_get(0)?;
        Ok(User {
            id,
            username: r.try_get(1)?,
            is_admin: r.try_get::<i64, _>(2)? != 0,
            permissions: self.grants(id).await?,
            created_at: r.try_get(3)?,
        })
    }
}

async fn insert_grants(
    tx: &mut sqlx::Transaction<'_, sqlx::Any>,
    user_id: i64,
    grants: &[Grant],
) -> sqlx::Result<()> {
    let mut seen = std::collections::BTreeSet::new();
    for g in grants {
        let instance = g.instance_id.unwrap_or(0);
        if !seen.insert((g.permission, instance)) {
            continue;
        }
        sqlx::query("INSERT INTO grants (user_id, permission, instance_id) VALUES ($1, $2, $3)")
            .bind(user_id)
            .bind(g.permission.as_str())
            .bind(instance)
            .execute(&mut **tx)
            .await?;
    }
    Ok(())
}
