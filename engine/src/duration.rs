//! Durations as users write them in options and configuration.

use std::time::Duration;

/// Parses durations such as `1 s`, `200ms`, `2 min`, `1h`, or a bare number
/// of milliseconds.
pub fn parse_duration(value: &str) -> Option<Duration> {
    let value = value.trim();
    let split = value
        .find(|c: char| !c.is_ascii_digit() && c != '.')
        .unwrap_or(value.len());
    let (number, unit) = value.split_at(split);
    let number: f64 = number.parse().ok()?;
    let millis = match unit.trim() {
        "" | "ms" | "milli" | "millis" | "milliseconds" => number,
        "s" | "sec" | "secs" | "second" | "seconds" => number * 1e3,
        "min" | "mins" | "minute" | "minutes" => number * 60e3,
        "h" | "hour" | "hours" => number * 3600e3,
        _ => return None,
    };
    Some(Duration::from_secs_f64(millis / 1e3))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_parse_with_units() {
        assert_eq!(parse_duration("1 s"), Some(Duration::from_secs(1)));
        assert_eq!(parse_duration("200ms"), Some(Duration::from_millis(200)));
        assert_eq!(parse_duration("2 min"), Some(Duration::from_secs(120)));
        assert_eq!(parse_duration("15"), Some(Duration::from_millis(15)));
        assert_eq!(parse_duration("soon"), None);
    }
}
