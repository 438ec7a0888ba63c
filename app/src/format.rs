//! Display helpers shared by pages.

use js_sys::Date;

/// A server timestamp (RFC 3339) as `YYYY-MM-DD HH:MM` in the browser's time zone; the
/// input unchanged if the browser cannot parse it.
pub fn timestamp(raw: &str) -> String {
    let date = Date::new(&raw.into());
    if date.get_time().is_nan() {
        return raw.to_owned();
    }
    format!(
        "{:04}-{:02}-{:02} {:02}:{:02}",
        date.get_full_year(),
        date.get_month() + 1,
        date.get_date(),
        date.get_hours(),
        date.get_minutes()
    )
}

/// `1 image`, `2 images`.
pub fn count(n: i64, one: &str, many: &str) -> String {
    format!("{n} {}", if n == 1 { one } else { many })
}
