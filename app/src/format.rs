//! Display helpers shared by pages.

use js_sys::Date;

/// A server timestamp (RFC 3339) as the browser reads it; `None` if it cannot.
fn parse_date(raw: &str) -> Option<Date> {
    let date = Date::new(&raw.into());
    (!date.get_time().is_nan()).then_some(date)
}

/// A server timestamp (RFC 3339) as `YYYY-MM-DD HH:MM` in the browser's time zone; the
/// input unchanged if the browser cannot parse it.
pub fn timestamp(raw: &str) -> String {
    let Some(date) = parse_date(raw) else {
        return raw.to_owned();
    };
    format!(
        "{:04}-{:02}-{:02} {:02}:{:02}",
        date.get_full_year(),
        date.get_month() + 1,
        date.get_date(),
        date.get_hours(),
        date.get_minutes()
    )
}

/// A server timestamp as `HH:MM:SS` in the browser's time zone (for log lines).
pub fn clock(raw: &str) -> String {
    let Some(date) = parse_date(raw) else {
        return raw.to_owned();
    };
    format!(
        "{:02}:{:02}:{:02}",
        date.get_hours(),
        date.get_minutes(),
        date.get_seconds()
    )
}

/// `1 image`, `2 images`.
pub fn count(n: i64, one: &str, many: &str) -> String {
    format!("{n} {}", if n == 1 { one } else { many })
}

/// A byte count for people: `512 B`, `3.4 KB`, `12.0 MB` (powers of 1024).
pub fn bytes(n: u64) -> String {
    const UNITS: [&str; 4] = ["KB", "MB", "GB", "TB"];
    if n < 1024 {
        return format!("{n} B");
    }
    let mut value = n as f64 / 1024.0;
    let mut unit = 0;
    while value >= 1024.0 && unit + 1 < UNITS.len() {
        value /= 1024.0;
        unit += 1;
    }
    format!("{value:.1} {}", UNITS[unit])
}

/// A share 0..1 as a percentage with one decimal: `93.3%`.
pub fn percent(share: f64) -> String {
    if share.is_finite() {
        format!("{:.1}%", share * 100.0)
    } else {
        "–".to_owned()
    }
}

/// A number of seconds for people: `42 s`, `3 min 05 s`, `1 h 02 min`.
pub fn duration(seconds: f64) -> String {
    if !seconds.is_finite() || seconds < 0.0 {
        return "–".to_owned();
    }
    let s = seconds.round() as u64;
    match s {
        0..60 => format!("{s} s"),
        60..3600 => format!("{} min {:02} s", s / 60, s % 60),
        _ => format!("{} h {:02} min", s / 3600, s % 3600 / 60),
    }
}

/// Milliseconds between two server timestamps (RFC 3339), or from `start` to now when
/// `end` is `None`; `None` if the browser cannot parse them.
pub fn elapsed_ms(start: &str, end: Option<&str>) -> Option<f64> {
    let start = Date::new(&start.into()).get_time();
    let end = match end {
        Some(e) => Date::new(&e.into()).get_time(),
        None => Date::now(),
    };
    (start.is_finite() && end.is_finite()).then(|| (end - start).max(0.0))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_and_durations_read_well() {
        assert_eq!(bytes(512), "512 B");
        assert_eq!(bytes(3 * 1024 + 400), "3.4 KB");
        assert_eq!(bytes(12 * 1024 * 1024), "12.0 MB");
        assert_eq!(percent(0.9333), "93.3%");
        assert_eq!(percent(f64::NAN), "–");
        assert_eq!(duration(42.4), "42 s");
        assert_eq!(duration(185.0), "3 min 05 s");
        assert_eq!(duration(3720.0), "1 h 02 min");
        assert_eq!(duration(-1.0), "–");
    }
}
