//! The non-blank lines of JSON-lines bytes, with their line numbers.

/// A non-blank line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Line {
    /// Its 1-based line number.
    pub number: u64,
    /// Where it starts in the input.
    pub start: usize,
    /// Where it ends in the input (before `\r\n` or `\n`).
    pub end: usize,
}

/// Iterates over the non-blank lines of the input; a UTF-8 byte-order mark
/// at its start is skipped.
pub(super) struct Lines<'a> {
    data: &'a [u8],
    pos: usize,
    number: u64,
}

impl<'a> Lines<'a> {
    /// The lines of `data`, a whole file.
    pub fn new(data: &'a [u8]) -> Self {
        let pos = if data.starts_with(b"\xef\xbb\xbf") {
            3
        } else {
            0
        };
        Self {
            data,
            pos,
            number: 0,
        }
    }
}

impl Iterator for Lines<'_> {
    type Item = Line;

    fn next(&mut self) -> Option<Line> {
        while self.pos < self.data.len() {
            let start = self.pos;
            let newline = self.data[start..].iter().position(|b| *b == b'\n');
            let mut end = newline.map_or(self.data.len(), |i| start + i);
            self.pos = end + 1;
            self.number += 1;
            if end > start && self.data[end - 1] == b'\r' {
                end -= 1;
            }
            if !self.data[start..end].iter().all(u8::is_ascii_whitespace) {
                return Some(Line {
                    number: self.number,
                    start,
                    end,
                });
            }
        }
        None
    }
}

/// Whether `line` could be one JSON object: it starts with `{` and ends
/// with `}`, whitespace aside.
pub(super) fn looks_like_object(line: &[u8]) -> bool {
    let text = line.trim_ascii();
    text.starts_with(b"{") && text.ends_with(b"}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_non_blank_lines() {
        let data = "\u{feff}{\"a\":1}\r\n\n  \t\r\n{\"a\":2}\n{\"a\":3}".as_bytes();
        let lines: Vec<(u64, &[u8])> = Lines::new(data)
            .map(|l| (l.number, &data[l.start..l.end]))
            .collect();
        assert_eq!(
            lines,
            vec![
                (1, &b"{\"a\":1}"[..]),
                (4, &b"{\"a\":2}"[..]),
                (5, &b"{\"a\":3}"[..])
            ]
        );
        assert_eq!(Lines::new(b"\n\n").count(), 0);
    }

    #[test]
    fn tells_objects_from_other_values() {
        assert!(looks_like_object(b" {\"a\": 1} "));
        assert!(!looks_like_object(b"[1]"));
        assert!(!looks_like_object(b"{\"a\":"));
        assert!(!looks_like_object(b"null"));
    }
}
