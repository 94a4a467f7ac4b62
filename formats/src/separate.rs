//! Telling the bad records of a batch from the good ones. The records are
//! decoded in groups, halved until a group decodes or is a single record:
//! a few bad records among many good ones cost a few more decodes, not one
//! decode per record, and the good ones are still decoded in bulk.

use std::borrow::Cow;
use std::ops::Range;

use arrow::array::RecordBatch;

/// Decodes the records at `ranges` of `bytes` whose `reasons` entry is
/// `None` (the others are known bad). `decode` turns the text of `n`
/// records into exactly `n` rows or fails; a record that fails on its own
/// gets the reason `explain` gives. Returns the good rows, in order.
pub(crate) fn separate<E, D, X>(
    bytes: &[u8],
    ranges: &[Range<usize>],
    reasons: &mut [Option<String>],
    mut decode: D,
    mut explain: X,
) -> Vec<RecordBatch>
where
    D: FnMut(&[u8], usize) -> Result<RecordBatch, E>,
    X: FnMut(&[u8], E) -> String,
{
    let candidates: Vec<usize> = (0..ranges.len())
        .filter(|i| reasons[*i].is_none())
        .collect();
    let mut good = Vec::new();
    // Groups still to decode, the next one last.
    let mut groups = vec![&candidates[..]];
    while let Some(group) = groups.pop() {
        let (Some(&first), Some(&last)) = (group.first(), group.last()) else {
            continue;
        };
        match decode(&text(bytes, ranges, group), group.len()) {
            Ok(rows) => good.push(rows),
            Err(error) if first == last => {
                reasons[first] = Some(explain(&bytes[ranges[first].clone()], error));
            }
            Err(_) => {
                let (front, back) = group.split_at(group.len() / 2);
                groups.push(back);
                groups.push(front);
            }
        }
    }
    good
}

/// The text of the records `group` (indexes into `ranges`, increasing): a
/// slice of `bytes` when they follow one another (what lies between them is
/// blank or comment lines, which the decoders skip), else their texts
/// joined by `\n`.
fn text<'a>(bytes: &'a [u8], ranges: &[Range<usize>], group: &[usize]) -> Cow<'a, [u8]> {
    match (group.first(), group.last()) {
        (Some(&first), Some(&last)) if last - first + 1 == group.len() => {
            Cow::Borrowed(&bytes[ranges[first].start..ranges[last].end])
        }
        _ => Cow::Owned(
            group
                .iter()
                .map(|i| &bytes[ranges[*i].clone()])
                .collect::<Vec<_>>()
                .join(&b'\n'),
        ),
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use arrow::array::{AsArray, Int64Array};
    use arrow::datatypes::{DataType, Field, Int64Type, Schema};

    use super::*;

    /// Records are numbers; `x` ones are bad.
    fn run(bytes: &[u8], reasons: &mut [Option<String>]) -> (Vec<Vec<i64>>, usize) {
        let ranges: Vec<Range<usize>> = (0..bytes.len())
            .step_by(2)
            .map(|start| start..start + 1)
            .collect();
        let schema = Arc::new(Schema::new(vec![Field::new("n", DataType::Int64, false)]));
        let mut decodes = 0;
        let good = separate(
            bytes,
            &ranges,
            reasons,
            |text: &[u8], rows| -> Result<RecordBatch, String> {
                decodes += 1;
                let values = std::str::from_utf8(text)
                    .unwrap()
                    .split('\n')
                    .map(|v| v.parse::<i64>().map_err(|_| format!("bad {v}")))
                    .collect::<Result<Vec<_>, _>>()?;
                assert_eq!(values.len(), rows);
                Ok(RecordBatch::try_new(
                    Arc::clone(&schema),
                    vec![Arc::new(Int64Array::from(values))],
                )
                .unwrap())
            },
            |raw: &[u8], error| format!("{}: {error}", String::from_utf8_lossy(raw)),
        );
        let rows = good
            .iter()
            .map(|b| b.column(0).as_primitive::<Int64Type>().values().to_vec())
            .collect();
        (rows, decodes)
    }

    #[test]
    fn one_decode_when_all_are_good() {
        let mut reasons = vec![None; 4];
        assert_eq!(
            run(b"1\n2\n3\n4\n", &mut reasons),
            (vec![vec![1, 2, 3, 4]], 1)
        );
        assert!(reasons.iter().all(Option::is_none));
    }

    #[test]
    fn halves_around_bad_records_and_skips_known_ones() {
        let mut reasons = vec![None, None, Some("known".to_string()), None, None, None];
        let (rows, _) = run(b"1\n2\n?\n4\nx\n6\n", &mut reasons);
        assert_eq!(rows.concat(), vec![1, 2, 4, 6]);
        assert_eq!(
            reasons,
            vec![
                None,
                None,
                Some("known".to_string()),
                None,
                Some("x: bad x".to_string()),
                None
            ]
        );
    }
}
