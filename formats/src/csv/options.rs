//! The CSV dialect: header, delimiter, quote, escape, null string, comment.

use std::collections::BTreeMap;

use crate::{Error, Result};

/// How a CSV file is laid out (options `csv.*`).
///
/// Null values: when `null_string` is not set (the default), an empty value
/// is null in every column but a string column, where it is the empty
/// string; string columns then have no nulls (as Flink's CSV format). When
/// it is set, exactly that string is null in every column, string columns
/// included, and nothing else is (an empty value of a numeric column is then
/// a bad record, unless the null string is empty). The encoder writes nulls
/// as the null string (empty when not set), so a null string that no value
/// equals round-trips nulls of every column.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CsvOptions {
    /// Whether the first record holds the column names (`csv.header`,
    /// default `true`).
    pub header: bool,
    /// The field delimiter (`csv.delimiter`, default `,`; `\t` for a tab).
    pub delimiter: u8,
    /// The quote (`csv.quote`, default `"`). A quote inside a quoted field
    /// is doubled.
    pub quote: u8,
    /// A byte that escapes the next one inside quoted fields when reading
    /// (`csv.escape`, default none). The encoder always doubles quotes and
    /// does not escape this byte, so quoted values holding it do not
    /// round-trip.
    pub escape: Option<u8>,
    /// The text of a null value (`csv.null-string`, default not set; see
    /// above).
    pub null_string: Option<String>,
    /// Lines starting with this byte are skipped when reading
    /// (`csv.comment`, default none).
    pub comment: Option<u8>,
}

impl Default for CsvOptions {
    fn default() -> Self {
        Self {
            header: true,
            delimiter: b',',
            quote: b'"',
            escape: None,
            null_string: None,
            comment: None,
        }
    }
}

impl CsvOptions {
    /// The names of the options [`CsvOptions::from_options`] reads.
    pub const OPTION_NAMES: &'static [&'static str] = &[
        "csv.header",
        "csv.delimiter",
        "csv.quote",
        "csv.escape",
        "csv.null-string",
        "csv.comment",
    ];

    /// The dialect set in connector `options` (defaults for absent ones).
    ///
    /// # Errors
    /// [`Error::Option`] naming the option and its invalid value: a header
    /// that is not `true` or `false`, a delimiter, quote, escape or comment
    /// that is not one ASCII character (or is a line break), or the same
    /// character for two roles.
    pub fn from_options(options: &BTreeMap<String, String>) -> Result<Self> {
        let mut parsed = Self::default();
        if let Some(value) = options.get("csv.header") {
            parsed.header = match value.trim().to_ascii_lowercase().as_str() {
                "true" => true,
                "false" => false,
                _ => return Err(invalid("csv.header", value, "expected 'true' or 'false'")),
            };
        }
        if let Some(value) = options.get("csv.delimiter") {
            parsed.delimiter = single_byte("csv.delimiter", value)?;
        }
        if let Some(value) = options.get("csv.quote") {
            parsed.quote = single_byte("csv.quote", value)?;
        }
        if let Some(value) = options.get("csv.escape") {
            parsed.escape = optional_byte("csv.escape", value)?;
        }
        if let Some(value) = options.get("csv.comment") {
            parsed.comment = optional_byte("csv.comment", value)?;
        }
        parsed.null_string = options.get("csv.null-string").cloned();
        parsed.check_distinct()?;
        Ok(parsed)
    }

    /// Checks that no character has two roles.
    fn check_distinct(&self) -> Result<()> {
        let roles = [
            ("csv.delimiter", Some(self.delimiter)),
            ("csv.quote", Some(self.quote)),
            ("csv.escape", self.escape),
            ("csv.comment", self.comment),
        ];
        for (i, (name, byte)) in roles.iter().enumerate() {
            let Some(byte) = byte else { continue };
            if let Some((other, _)) = roles[i + 1..].iter().find(|(_, b)| *b == Some(*byte)) {
                return Err(invalid(
                    name,
                    &char::from(*byte).to_string(),
                    &format!("the same character as '{other}'"),
                ));
            }
        }
        Ok(())
    }

    /// Whether `value` is null in a column that is not a string one.
    pub(super) fn is_null(&self, value: &str) -> bool {
        value == self.null_string.as_deref().unwrap_or_default()
    }

    /// A record splitter with this dialect (the one arrow's CSV reader
    /// builds from the same settings).
    pub(super) fn splitter(&self) -> csv_core::Reader {
        csv_core::ReaderBuilder::new()
            .delimiter(self.delimiter)
            .quote(self.quote)
            .escape(self.escape)
            .comment(self.comment)
            .build()
    }
}

fn invalid(option: &str, value: &str, why: &str) -> Error {
    Error::Option {
        option: option.to_string(),
        message: format!("invalid value '{value}': {why}"),
    }
}

/// One ASCII character, not a line break; `\t` is a tab.
fn single_byte(option: &str, value: &str) -> Result<u8> {
    let byte = match value {
        "\\t" => b'\t',
        _ => match value.as_bytes() {
            [byte] if byte.is_ascii() => *byte,
            _ => return Err(invalid(option, value, "expected a single ASCII character")),
        },
    };
    if byte == b'\n' || byte == b'\r' {
        return Err(invalid(option, value, "a line break cannot be used"));
    }
    Ok(byte)
}

/// Like [`single_byte`], the empty string meaning none.
fn optional_byte(option: &str, value: &str) -> Result<Option<u8>> {
    if value.is_empty() {
        return Ok(None);
    }
    single_byte(option, value).map(Some)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn options(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn defaults_when_absent() {
        assert_eq!(
            CsvOptions::from_options(&BTreeMap::new()).unwrap(),
            CsvOptions::default()
        );
    }

    #[test]
    fn parses_every_option() {
        let parsed = CsvOptions::from_options(&options(&[
            ("csv.header", "FALSE"),
            ("csv.delimiter", "\\t"),
            ("csv.quote", "'"),
            ("csv.escape", "\\"),
            ("csv.null-string", "\\N"),
            ("csv.comment", "#"),
        ]))
        .unwrap();
        assert_eq!(
            parsed,
            CsvOptions {
                header: false,
                delimiter: b'\t',
                quote: b'\'',
                escape: Some(b'\\'),
                null_string: Some("\\N".to_string()),
                comment: Some(b'#'),
            }
        );
        let empty = CsvOptions::from_options(&options(&[
            ("csv.escape", ""),
            ("csv.comment", ""),
            ("csv.null-string", ""),
        ]))
        .unwrap();
        assert_eq!(empty.escape, None);
        assert_eq!(empty.comment, None);
        assert_eq!(empty.null_string, Some(String::new()));
        for name in CsvOptions::OPTION_NAMES {
            assert!(name.starts_with("csv."));
        }
    }

    #[test]
    fn errors_name_the_option_and_the_value() {
        for (option, value, expected) in [
            (
                "csv.delimiter",
                ";;",
                "option 'csv.delimiter': invalid value ';;': expected a single ASCII character",
            ),
            (
                "csv.delimiter",
                "§",
                "option 'csv.delimiter': invalid value '§': expected a single ASCII character",
            ),
            (
                "csv.quote",
                "",
                "option 'csv.quote': invalid value '': expected a single ASCII character",
            ),
            (
                "csv.header",
                "yes",
                "option 'csv.header': invalid value 'yes': expected 'true' or 'false'",
            ),
            (
                "csv.comment",
                "\n",
                "option 'csv.comment': invalid value '\n': a line break cannot be used",
            ),
            (
                "csv.quote",
                ",",
                "option 'csv.delimiter': invalid value ',': the same character as 'csv.quote'",
            ),
        ] {
            let err = CsvOptions::from_options(&options(&[(option, value)]))
                .unwrap_err()
                .to_string();
            assert_eq!(err, expected);
        }
    }
}
