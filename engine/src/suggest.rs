//! Suggestions for misspelt names: an unknown option, connector or setting
//! is answered with the closest valid name, when one is close enough.

/// `"did you mean 'name'? "` for the name of `valid` closest to `given`
/// (by edit distance, at most a third of its length and at least 2), or
/// nothing.
pub fn did_you_mean<'a>(given: &str, valid: impl IntoIterator<Item = &'a str>) -> String {
    let limit = (given.chars().count() / 3).max(2);
    valid
        .into_iter()
        .map(|name| (edit_distance(given, name), name))
        .filter(|&(distance, _)| distance <= limit)
        .min()
        .map(|(_, name)| format!("did you mean '{name}'? "))
        .unwrap_or_default()
}

/// The Damerau-Levenshtein distance of `a` and `b` (with adjacent
/// transpositions): how many characters to insert, remove, replace or
/// swap to turn one into the other.
fn edit_distance(a: &str, b: &str) -> usize {
    let (a, b): (Vec<char>, Vec<char>) = (a.chars().collect(), b.chars().collect());
    // Three rows of the table: two rows back, the last and this one.
    let mut before: Vec<usize> = vec![0; b.len() + 1];
    let mut last: Vec<usize> = (0..=b.len()).collect();
    for i in 1..=a.len() {
        let mut row = vec![i; b.len() + 1];
        for j in 1..=b.len() {
            let cost = usize::from(a[i - 1] != b[j - 1]);
            row[j] = (last[j] + 1).min(row[j - 1] + 1).min(last[j - 1] + cost);
            if i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1] {
                row[j] = row[j].min(before[j - 2] + 1);
            }
        }
        before = std::mem::replace(&mut last, row);
    }
    last[b.len()]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_closest_name_is_suggested_when_close_enough() {
        let valid = ["parallelism.default", "worker.slots", "path"];
        assert_eq!(
            did_you_mean("parallelism.defualt", valid),
            "did you mean 'parallelism.default'? "
        );
        assert_eq!(did_you_mean("pth", valid), "did you mean 'path'? ");
        assert_eq!(did_you_mean("format", valid), "");
        assert_eq!(edit_distance("ab", "ba"), 1);
        assert_eq!(edit_distance("", "abc"), 3);
        assert_eq!(edit_distance("kitten", "sitting"), 3);
    }
}
