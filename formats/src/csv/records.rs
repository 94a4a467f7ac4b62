//! Splitting CSV bytes into records one at a time, with where each starts:
//! what the decoder needs to tell bad records apart and name their lines.

use csv_core::ReadRecordResult;

use super::CsvOptions;

/// Splits records off the front of the input, keeping each record's fields.
pub(super) struct Splitter {
    reader: csv_core::Reader,
    comment: Option<u8>,
    /// Whether a record was split off (the reader strips a byte-order mark
    /// before the first one only).
    started: bool,
    data: Vec<u8>,
    ends: Vec<usize>,
}

/// One record, borrowed from the splitter and its input.
pub(super) struct Record<'a> {
    /// Bytes of the input the record took, with blank and comment lines
    /// before it and its terminator.
    pub consumed: usize,
    /// Where the record's text starts in the input (after those lines).
    pub start: usize,
    /// The record's text, without the lines before it and its terminator.
    pub raw: &'a [u8],
    data: &'a [u8],
    ends: &'a [usize],
}

impl Record<'_> {
    /// How many fields the record has.
    pub fn len(&self) -> usize {
        self.ends.len()
    }

    /// The fields' unquoted bytes.
    pub fn fields(&self) -> impl Iterator<Item = &[u8]> {
        let starts = std::iter::once(0).chain(self.ends.iter().copied());
        starts
            .zip(self.ends)
            .map(|(start, end)| &self.data[start..*end])
    }
}

impl Splitter {
    /// A splitter for `options`' dialect, at the start of a record.
    pub fn new(options: &CsvOptions) -> Self {
        Self {
            reader: options.splitter(),
            comment: options.comment,
            started: false,
            data: vec![0; 1024],
            ends: vec![0; 16],
        }
    }

    /// The first record of `input`, or `None` when only blank and comment
    /// lines are left. `input` runs to the end of the data: its end ends the
    /// last record.
    pub fn next<'a>(&'a mut self, input: &'a [u8]) -> Option<Record<'a>> {
        let (mut read, mut written, mut fields) = (0, 0, 0);
        loop {
            let (result, nin, nout, nend) = self.reader.read_record(
                &input[read..],
                &mut self.data[written..],
                &mut self.ends[fields..],
            );
            read += nin;
            written += nout;
            fields += nend;
            match result {
                ReadRecordResult::InputEmpty => {}
                ReadRecordResult::OutputFull => self.data.resize(self.data.len() * 2, 0),
                ReadRecordResult::OutputEndsFull => self.ends.resize(self.ends.len() * 2, 0),
                ReadRecordResult::Record => {
                    let start = self.skipped(&input[..read]);
                    self.started = true;
                    let mut end = read;
                    while end > start && matches!(input[end - 1], b'\n' | b'\r') {
                        end -= 1;
                    }
                    return Some(Record {
                        consumed: read,
                        start,
                        raw: &input[start..end],
                        data: &self.data[..written],
                        ends: &self.ends[..fields],
                    });
                }
                ReadRecordResult::End => return None,
            }
        }
    }

    /// How many bytes of blank lines, comment lines and a byte-order mark
    /// come before the record in `span` (the reader skips them the same
    /// way).
    fn skipped(&self, span: &[u8]) -> usize {
        let bom = !self.started && span.starts_with(b"\xef\xbb\xbf");
        let mut at = if bom { 3 } else { 0 };
        while let Some(&byte) = span.get(at) {
            if byte == b'\n' || byte == b'\r' {
                at += 1;
            } else if Some(byte) == self.comment {
                at = span[at..]
                    .iter()
                    .position(|b| *b == b'\n')
                    .map_or(span.len(), |i| at + i + 1);
            } else {
                break;
            }
        }
        at
    }
}

/// Line numbers of offsets into the data, for offsets that only grow.
pub(super) struct Lines<'a> {
    data: &'a [u8],
    offset: usize,
    line: u64,
}

impl<'a> Lines<'a> {
    /// Counts the lines of `data`, which starts on line 1.
    pub fn new(data: &'a [u8]) -> Self {
        Self {
            data,
            offset: 0,
            line: 1,
        }
    }

    /// The 1-based line `offset` is on; `offset` is at least the last one
    /// asked about.
    pub fn at(&mut self, offset: usize) -> u64 {
        if offset > self.offset {
            let newlines = self.data[self.offset..offset]
                .iter()
                .filter(|b| **b == b'\n')
                .count();
            self.line += newlines as u64;
            self.offset = offset;
        }
        self.line
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every record of `input`: (start line, raw text, fields).
    fn split(input: &[u8], options: &CsvOptions) -> Vec<(u64, String, Vec<String>)> {
        let mut splitter = Splitter::new(options);
        let mut lines = Lines::new(input);
        let mut pos = 0;
        let mut records = Vec::new();
        while let Some(record) = splitter.next(&input[pos..]) {
            let fields = record
                .fields()
                .map(|f| String::from_utf8(f.to_vec()).unwrap())
                .collect();
            records.push((
                lines.at(pos + record.start),
                String::from_utf8(record.raw.to_vec()).unwrap(),
                fields,
            ));
            pos += record.consumed;
        }
        assert_eq!(pos, input.len());
        records
    }

    #[test]
    fn splits_quoted_fields_blank_lines_and_crlf() {
        let input = b"a,b\r\n\r\n\"x,\ny\",\"q\"\"q\"\n\n\n1,2";
        assert_eq!(
            split(input, &CsvOptions::default()),
            vec![
                (1, "a,b".to_string(), vec!["a".to_string(), "b".to_string()]),
                (
                    3,
                    "\"x,\ny\",\"q\"\"q\"".to_string(),
                    vec!["x,\ny".to_string(), "q\"q".to_string()]
                ),
                (7, "1,2".to_string(), vec!["1".to_string(), "2".to_string()]),
            ]
        );
    }

    #[test]
    fn skips_comments_and_a_byte_order_mark() {
        let options = CsvOptions {
            comment: Some(b'#'),
            ..CsvOptions::default()
        };
        let input = "\u{feff}# note\nh\n# more\r\n\nv,\"#\"\n".as_bytes();
        assert_eq!(
            split(input, &options),
            vec![
                (2, "h".to_string(), vec!["h".to_string()]),
                (
                    5,
                    "v,\"#\"".to_string(),
                    vec!["v".to_string(), "#".to_string()]
                ),
            ]
        );
    }

    #[test]
    fn grows_for_long_and_wide_records() {
        let long = "x".repeat(5000);
        let wide = vec!["7"; 100].join(",");
        let input = format!("{long}\n{wide}\n");
        let records = split(input.as_bytes(), &CsvOptions::default());
        assert_eq!(records[0].2, vec![long]);
        assert_eq!(records[1].2.len(), 100);
    }
}
