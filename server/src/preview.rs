//! Preview links (SPEC §6): `<server>/p/<token>` with `token = <id>.<expires>.<mac>`, where
//! `mac` is HMAC-SHA256 over the link id, its model and its expiry under the server secret
//! (`AUTOLEARN_SECRET`; servers sharing a database must share it). The row in
//! `preview_links` makes a link revocable; the MAC makes a token unforgeable without a
//! database lookup of anything but its own row. Also the QR code of a link.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use hmac::{Hmac, Mac};
use sha2::Sha256;

use crate::config::Secret;
use crate::db::previews::PreviewRow;

/// Bytes of the MAC kept in the token (128 bits).
const MAC_BYTES: usize = 16;

/// Why a preview token is refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// Malformed, unknown, or the signature does not match.
    Invalid,
    Expired,
    Revoked,
}

impl Refusal {
    pub fn code(self) -> &'static str {
        match self {
            Self::Invalid => "preview_invalid",
            Self::Expired => "preview_expired",
            Self::Revoked => "preview_revoked",
        }
    }

    pub fn message(self) -> &'static str {
        match self {
            Self::Invalid => {
                "this preview link is not valid: it was mistyped, cut short or not issued by this server"
            }
            Self::Expired => "this preview link has expired; ask for a new one",
            Self::Revoked => "this preview link was revoked by its owner; ask for a new one",
        }
    }
}

fn mac(secret: &Secret, id: i64, model_id: i64, expires_at: i64) -> Hmac<Sha256> {
    let mut m = Hmac::<Sha256>::new_from_slice(secret.0.as_bytes()).expect("HMAC takes any key");
    m.update(format!("autolearn-preview-v1\n{id}\n{model_id}\n{expires_at}").as_bytes());
    m
}

/// The token of a link.
pub fn token(secret: &Secret, link: &PreviewRow) -> String {
    let tag = mac(secret, link.id, link.model_id, link.expires_at)
        .finalize()
        .into_bytes();
    format!(
        "{}.{}.{}",
        link.id,
        link.expires_at,
        URL_SAFE_NO_PAD.encode(&tag[..MAC_BYTES])
    )
}

/// The link id a token names, if it is well formed (its MAC is checked by [`check`]).
pub fn link_id(token: &str) -> Option<i64> {
    let mut parts = token.splitn(3, '.');
    let id = parts.next()?.parse().ok()?;
    parts.next()?.parse::<i64>().ok()?;
    parts.next()?;
    Some(id)
}

/// Checks a token against its row (`None`: no such row) at time `now` (Unix seconds).
pub fn check(
    secret: &Secret,
    token: &str,
    row: Option<&PreviewRow>,
    now: i64,
) -> Result<(), Refusal> {
    let mut parts = token.splitn(3, '.');
    let (Some(id), Some(expires), Some(sig), Some(row)) = (
        parts.next().and_then(|p| p.parse::<i64>().ok()),
        parts.next().and_then(|p| p.parse::<i64>().ok()),
        parts.next().and_then(|p| URL_SAFE_NO_PAD.decode(p).ok()),
        row,
    ) else {
        return Err(Refusal::Invalid);
    };
    if id != row.id || expires != row.expires_at || sig.len() != MAC_BYTES {
        return Err(Refusal::Invalid);
    }
    // Constant-time comparison of the truncated MAC.
    mac(secret, row.id, row.model_id, row.expires_at)
        .verify_truncated_left(&sig)
        .map_err(|_| Refusal::Invalid)?;
    if row.revoked {
        return Err(Refusal::Revoked);
    }
    if now >= row.expires_at {
        return Err(Refusal::Expired);
    }
    Ok(())
}

/// `text` as a QR code in a standalone SVG document (medium error correction, the
/// standard four-module quiet zone), black on white so any phone camera reads it.
pub fn qr_svg(text: &str) -> String {
    use qrcodegen::{QrCode, QrCodeEcc};
    let Ok(qr) = QrCode::encode_text(text, QrCodeEcc::Medium) else {
        // Only texts over ~2 KB fail; links are far shorter.
        return String::new();
    };
    let border = 4;
    let side = qr.size() + 2 * border;
    let mut path = String::new();
    for y in 0..qr.size() {
        for x in 0..qr.size() {
            if qr.get_module(x, y) {
                path.push_str(&format!("M{},{}h1v1h-1z", x + border, y + border));
            }
        }
    }
    format!(
        "<svg xmlns=\"http://www.w3.org/2000/svg\" viewBox=\"0 0 {side} {side}\" \
         shape-rendering=\"crispEdges\" role=\"img\" aria-label=\"QR code of the preview link\">\
         <rect width=\"100%\" height=\"100%\" fill=\"#fff\"/><path d=\"{path}\" fill=\"#000\"/></svg>"
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row() -> PreviewRow {
        PreviewRow {
            id: 7,
            model_id: 3,
            created_at: "2026-11-27T00:00:00Z".into(),
            expires_at: 1_000,
            revoked: false,
        }
    }

    #[test]
    fn tokens_verify_and_refuse_tampering() {
        let secret = Secret("s3cret".into());
        let r = row();
        let t = token(&secret, &r);
        assert_eq!(link_id(&t), Some(7));
        assert_eq!(check(&secret, &t, Some(&r), 999), Ok(()));
        assert_eq!(check(&secret, &t, Some(&r), 1_000), Err(Refusal::Expired));
        let revoked = PreviewRow {
            revoked: true,
            ..row()
        };
        assert_eq!(check(&secret, &t, Some(&revoked), 0), Err(Refusal::Revoked));
        // Another secret, another model, a longer expiry, a flipped character: all invalid.
        assert_eq!(
            check(&Secret("other".into()), &t, Some(&r), 0),
            Err(Refusal::Invalid)
        );
        let other_model = PreviewRow {
            model_id: 4,
            ..row()
        };
        assert_eq!(
            check(&secret, &t, Some(&other_model), 0),
            Err(Refusal::Invalid)
        );
        let extended = t.replacen(".1000.", ".9999.", 1);
        let later = PreviewRow {
            expires_at: 9_999,
            ..row()
        };
        assert_eq!(
            check(&secret, &extended, Some(&later), 0),
            Err(Refusal::Invalid)
        );
        let mut flipped = t.clone().into_bytes();
        let last = flipped.len() - 1;
        flipped[last] = if flipped[last] == b'A' { b'B' } else { b'A' };
        let flipped = String::from_utf8(flipped).unwrap();
        assert_eq!(check(&secret, &flipped, Some(&r), 0), Err(Refusal::Invalid));
        for bad in ["", "7", "7.1000", "x.1000.abc", "7.1000.!!"] {
            assert_eq!(
                check(&secret, bad, Some(&r), 0),
                Err(Refusal::Invalid),
                "{bad}"
            );
        }
        assert_eq!(check(&secret, &t, None, 0), Err(Refusal::Invalid));
    }

    #[test]
    fn qr_codes_are_svg_with_a_quiet_zone() {
        let svg = qr_svg("http://example.test/p/1.2.abc");
        assert!(svg.starts_with("<svg") && svg.ends_with("</svg>"));
        // Version 3 (29 modules) for a short URL at medium correction, plus 2×4 border.
        assert!(svg.contains("viewBox=\"0 0 37 37\""), "{svg}");
        assert!(svg.matches("h1v1h-1z").count() > 100);
    }
}
