//! Records a decoder cannot decode: the `bad-records` policy, the bad records
//! themselves, what a decoder returns, and the dead-letter encoding of bad
//! records.

use std::collections::BTreeMap;
use std::str::FromStr;

use arrow::array::RecordBatch;
use arrow::compute::concat_batches;
use arrow::datatypes::SchemaRef;

use crate::{Error, Result};

/// What a decoder does with a record it cannot decode (option
/// `bad-records`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum BadRecords {
    /// Fail the read at the first bad record, naming its file and line
    /// (`fail`, the default).
    #[default]
    Fail,
    /// Skip bad records and count them (`drop`).
    Drop,
    /// Skip bad records and keep them, with their file, line, raw text and
    /// reason, for a dead-letter output (`dead-letter`).
    DeadLetter,
}

impl BadRecords {
    /// The option's name.
    pub const OPTION: &'static str = "bad-records";

    /// Each policy and its option value.
    const VALUES: [(&'static str, BadRecords); 3] = [
        ("fail", BadRecords::Fail),
        ("drop", BadRecords::Drop),
        ("dead-letter", BadRecords::DeadLetter),
    ];

    /// The policy set in connector `options` (`fail` when absent).
    ///
    /// # Errors
    /// When the option's value is not a policy.
    pub fn from_options(options: &BTreeMap<String, String>) -> Result<Self> {
        options
            .get(Self::OPTION)
            .map_or(Ok(BadRecords::Fail), |value| value.parse())
    }
}

impl FromStr for BadRecords {
    type Err = Error;

    fn from_str(value: &str) -> Result<Self> {
        let trimmed = value.trim();
        Self::VALUES
            .iter()
            .find(|(name, _)| name.eq_ignore_ascii_case(trimmed))
            .map(|(_, policy)| *policy)
            .ok_or_else(|| {
                let valid: Vec<&str> = Self::VALUES.iter().map(|(name, _)| *name).collect();
                Error::Option {
                    option: Self::OPTION.to_string(),
                    message: format!("invalid value '{value}' (valid: {})", valid.join(", ")),
                }
            })
    }
}

/// A record that could not be decoded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BadRecord {
    /// The file it is in.
    pub file: String,
    /// The 1-based line of the file the record starts on (counting `\n`
    /// bytes, the header line and blank lines included).
    pub line: u64,
    /// The record's text as in the file (without its line terminator),
    /// invalid UTF-8 replaced.
    pub raw: String,
    /// Why it could not be decoded.
    pub reason: String,
}

/// What a decoder made of its input.
#[derive(Debug, Default)]
pub struct Decoded {
    /// The good records, in input order.
    pub batches: Vec<RecordBatch>,
    /// How many bad records were skipped (policy `drop`).
    pub dropped: u64,
    /// The bad records kept (policy `dead-letter`), in input order.
    pub dead_letters: Vec<BadRecord>,
}

impl Decoded {
    /// How many good rows `batches` hold.
    pub fn rows(&self) -> usize {
        self.batches.iter().map(RecordBatch::num_rows).sum()
    }

    /// How many bad records were skipped, dropped or dead-lettered.
    pub fn bad_records(&self) -> u64 {
        self.dropped + self.dead_letters.len() as u64
    }

    /// Adds good rows decoded in parts as one batch.
    pub(crate) fn push_rows(
        &mut self,
        schema: &SchemaRef,
        mut parts: Vec<RecordBatch>,
    ) -> Result<()> {
        match parts.len() {
            0 => {}
            1 => self.batches.append(&mut parts),
            _ => self.batches.push(concat_batches(schema, &parts)?),
        }
        Ok(())
    }

    /// Handles a bad record by `policy`: fails, counts it, or keeps it.
    ///
    /// # Errors
    /// [`Error::BadRecord`] under [`BadRecords::Fail`].
    pub(crate) fn reject(
        &mut self,
        policy: BadRecords,
        file: &str,
        line: u64,
        raw: &[u8],
        reason: String,
    ) -> Result<()> {
        match policy {
            BadRecords::Fail => Err(Error::BadRecord {
                file: file.to_string(),
                line,
                reason,
            }),
            BadRecords::Drop => {
                self.dropped += 1;
                Ok(())
            }
            BadRecords::DeadLetter => {
                self.dead_letters.push(BadRecord {
                    file: file.to_string(),
                    line,
                    raw: String::from_utf8_lossy(raw).into_owned(),
                    reason,
                });
                Ok(())
            }
        }
    }
}

/// Encodes bad records as JSON lines, one object per record:
/// `{"file":..,"line":..,"reason":..,"raw":..}`.
pub fn dead_letter_json_lines(records: &[BadRecord]) -> Vec<u8> {
    let mut out = Vec::new();
    for record in records {
        let line = format!(
            "{{\"file\":{},\"line\":{},\"reason\":{},\"raw\":{}}}\n",
            serde_json::Value::from(record.file.as_str()),
            record.line,
            serde_json::Value::from(record.reason.as_str()),
            serde_json::Value::from(record.raw.as_str()),
        );
        out.extend_from_slice(line.as_bytes());
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_policies() {
        assert_eq!("fail".parse::<BadRecords>().unwrap(), BadRecords::Fail);
        assert_eq!("drop".parse::<BadRecords>().unwrap(), BadRecords::Drop);
        assert_eq!(
            " Dead-Letter ".parse::<BadRecords>().unwrap(),
            BadRecords::DeadLetter
        );
        assert_eq!(
            BadRecords::from_options(&BTreeMap::new()).unwrap(),
            BadRecords::Fail
        );
        let options = BTreeMap::from([("bad-records".to_string(), "drop".to_string())]);
        assert_eq!(
            BadRecords::from_options(&options).unwrap(),
            BadRecords::Drop
        );
    }

    #[test]
    fn invalid_policy_lists_the_valid_values() {
        let err = "skip".parse::<BadRecords>().unwrap_err().to_string();
        assert_eq!(
            err,
            "option 'bad-records': invalid value 'skip' (valid: fail, drop, dead-letter)"
        );
    }

    #[test]
    fn reject_follows_the_policy() {
        let mut decoded = Decoded::default();
        let err = decoded
            .reject(BadRecords::Fail, "f.csv", 3, b"x", "bad".to_string())
            .unwrap_err();
        assert_eq!(err.to_string(), "f.csv, line 3: bad");

        decoded
            .reject(BadRecords::Drop, "f.csv", 3, b"x", "bad".to_string())
            .unwrap();
        decoded
            .reject(
                BadRecords::DeadLetter,
                "f.csv",
                4,
                b"y\xff",
                "worse".to_string(),
            )
            .unwrap();
        assert_eq!(decoded.dropped, 1);
        assert_eq!(decoded.bad_records(), 2);
        assert_eq!(
            decoded.dead_letters,
            vec![BadRecord {
                file: "f.csv".to_string(),
                line: 4,
                raw: "y\u{fffd}".to_string(),
                reason: "worse".to_string(),
            }]
        );
    }

    #[test]
    fn dead_letters_are_json_lines() {
        let records = vec![
            BadRecord {
                file: "s3://b/f.csv".to_string(),
                line: 7,
                raw: "a,\"b\nc".to_string(),
                reason: "expected 3 fields, found 2".to_string(),
            },
            BadRecord {
                file: "f.json".to_string(),
                line: 1,
                raw: "{".to_string(),
                reason: "truncated".to_string(),
            },
        ];
        let text = String::from_utf8(dead_letter_json_lines(&records)).unwrap();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(
            lines[0],
            r#"{"file":"s3://b/f.csv","line":7,"reason":"expected 3 fields, found 2","raw":"a,\"b\nc"}"#
        );
        let second: serde_json::Value = serde_json::from_str(lines[1]).unwrap();
        assert_eq!(second["raw"], "{");
        assert_eq!(second["line"], 1);
        assert!(text.ends_with('\n'));
    }
}
