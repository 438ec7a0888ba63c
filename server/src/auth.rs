//! Authentication: argon2 password hashes, random session tokens (stored only as SHA-256),
//! and the extractor that turns a cookie or bearer token into a [`Principal`].

use argon2::Argon2;
use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use axum::extract::FromRequestParts;
use axum::http::HeaderMap;
use axum::http::header::{AUTHORIZATION, COOKIE};
use axum::http::request::Parts;
use rand::RngCore;
use sha2::{Digest, Sha256};

use crate::AppState;
pub use crate::db::users::Principal;
use crate::error::ApiError;

pub const SESSION_COOKIE: &str = "autolearn_session";
/// Sessions and API tokens last a week.
pub const SESSION_TTL_SECS: i64 = 7 * 24 * 3600;
pub const MIN_PASSWORD_CHARS: usize = 8;

pub fn hash_password(password: &str) -> anyhow::Result<String> {
    let salt = SaltString::generate(&mut rand::rngs::OsRng);
    Argon2::default()
        .hash_password(password.as_bytes(), &salt)
        .map(|h| h.to_string())
        .map_err(|e| anyhow::anyhow!("hashing password: {e}"))
}

pub fn verify_password(password: &str, hash: &str) -> bool {
    PasswordHash::new(hash).is_ok_and(|h| {
        Argon2::default()
            .verify_password(password.as_bytes(), &h)
            .is_ok()
    })
}

/// Threads that run argon2, as many as cores. Not tokio's blocking pool: each of its (up to
/// 512) threads would keep the ~19 MiB argon2 needs in its own malloc arena, so a login flood
/// grew the process by hundreds of MiB; two threads keep two arenas.
static HASHING: std::sync::LazyLock<rayon::ThreadPool> = std::sync::LazyLock::new(|| {
    rayon::ThreadPoolBuilder::new()
        .num_threads(std::thread::available_parallelism().map_or(2, std::num::NonZero::get))
        .thread_name(|i| format!("argon2-{i}"))
        .build()
        .expect("the password-hashing threads start")
});

/// Runs password hashing or verification on the hashing threads.
pub async fn on_hashing_threads<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> T {
    let (tx, rx) = tokio::sync::oneshot::channel();
    HASHING.spawn(move || {
        // A panic goes back to the caller (rayon would abort the process).
        let _ = tx.send(std::panic::catch_unwind(std::panic::AssertUnwindSafe(f)));
    });
    match rx
        .await
        .expect("the hashing threads do not drop their work")
    {
        Ok(v) => v,
        Err(panic) => std::panic::resume_unwind(panic),
    }
}

/// 256 random bits, hex-encoded.
pub fn new_token() -> String {
    let mut b = [0u8; 32];
    rand::rngs::OsRng.fill_bytes(&mut b);
    hex::encode(b)
}

/// What the database keeps of a token: a leaked table does not yield usable tokens.
pub fn token_hash(token: &str) -> String {
    hex::encode(Sha256::digest(token.as_bytes()))
}

/// Whether a sent token is the one whose hash is stored, in time that does not depend on
/// where the hashes differ.
pub fn token_matches(sent: Option<&str>, stored_hash: &str) -> bool {
    let Some(sent) = sent else {
        return false;
    };
    let sent = token_hash(sent);
    sent.len() == stored_hash.len()
        && sent
            .bytes()
            .zip(stored_hash.bytes())
            .fold(0u8, |acc, (a, b)| acc | (a ^ b))
            == 0
}

/// A random password for the first admin when none is configured.
pub fn generate_password() -> String {
    const ALPHABET: &[u8] = b"abcdefghijkmnopqrstuvwxyzABCDEFGHJKLMNPQRSTUVWXYZ23456789";
    let mut b = [0u8; 20];
    rand::rngs::OsRng.fill_bytes(&mut b);
    b.iter()
        .map(|x| ALPHABET[usize::from(*x) % ALPHABET.len()] as char)
        .collect()
}

/// The session token of a request: `Authorization: Bearer <t>` or the session cookie.
pub fn request_token(headers: &HeaderMap) -> Option<String> {
    if let Some(t) = headers
        .get(AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
    {
        return Some(t.trim().to_owned());
    }
    headers
        .get_all(COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|kv| kv.trim().split_once('='))
        .find(|(k, _)| *k == SESSION_COOKIE)
        .map(|(_, v)| v.to_owned())
}

impl FromRequestParts<AppState> for Principal {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        Self::from_headers(state, &parts.headers).await
    }
}

impl Principal {
    /// The signed-in user of a request, for handlers that also accept other credentials.
    pub async fn from_headers(state: &AppState, headers: &HeaderMap) -> Result<Self, ApiError> {
        let token = request_token(headers).ok_or_else(ApiError::unauthorized)?;
        state
            .db
            .session_principal(&token_hash(&token))
            .await?
            .ok_or_else(ApiError::unauthorized)
    }

    pub fn require(&self, perm: shared::Permission, instance: Option<i64>) -> Result<(), ApiError> {
        if self.can(perm, instance) {
            Ok(())
        } else {
            Err(ApiError::forbidden(perm))
        }
    }

    /// `perm` on the instance a found resource belongs to. A caller who holds nothing on
    /// that instance gets the answer a missing resource gets (`what` not found), so ids of
    /// other teams' resources cannot be probed; one who can see it but lacks `perm` gets 403.
    pub fn require_on(
        &self,
        perm: shared::Permission,
        instance: i64,
        what: &str,
    ) -> Result<(), ApiError> {
        if self.can(perm, Some(instance)) {
            return Ok(());
        }
        let visible = shared::Permission::ALL
            .iter()
            .any(|q| self.can(*q, Some(instance)));
        if visible {
            Err(ApiError::forbidden(perm))
        } else {
            Err(ApiError::not_found(what))
        }
    }

    pub fn require_admin(&self) -> Result<(), ApiError> {
        if self.is_admin {
            Ok(())
        } else {
            Err(ApiError::admin_only())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passwords_verify_only_against_their_hash() {
        let h = hash_password("correct horse").unwrap();
        assert!(h.starts_with("$argon2id$"));
        assert!(verify_password("correct horse", &h));
        assert!(!verify_password("wrong", &h));
        assert!(!verify_password("x", "not a hash"));
    }

    #[test]
    fn tokens_are_random_and_hashed() {
        let (a, b) = (new_token(), new_token());
        assert_ne!(a, b);
        assert_eq!(a.len(), 64);
        assert_eq!(token_hash(&a).len(), 64);
        assert_ne!(token_hash(&a), a);
        assert!(token_matches(Some(&a), &token_hash(&a)));
        assert!(!token_matches(Some(&b), &token_hash(&a)));
        assert!(!token_matches(None, &token_hash(&a)));
        assert!(!token_matches(Some(""), ""));
    }
}
