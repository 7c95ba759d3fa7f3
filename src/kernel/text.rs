//! Small text helpers for error messages: edit distance and "did you mean" suggestions.

/// Levenshtein distance over bytes (names here are ASCII).
pub fn edit_distance(a: &str, b: &str) -> usize {
    let (a, b) = (a.as_bytes(), b.as_bytes());
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    let mut cur = vec![0; b.len() + 1];
    for (i, ca) in a.iter().enumerate() {
        cur[0] = i + 1;
        for (j, cb) in b.iter().enumerate() {
            let cost = usize::from(ca != cb);
            cur[j + 1] = (prev[j] + cost).min(prev[j + 1] + 1).min(cur[j] + 1);
        }
        std::mem::swap(&mut prev, &mut cur);
    }
    prev[b.len()]
}

/// The candidate a near miss was meant to be: equal ignoring case, or within a small edit
/// distance (`sessionId` → `sessionID`, `websiteId` → `websiteID`, `acount` → `account`).
pub fn did_you_mean<'a>(
    wanted: &str,
    candidates: impl IntoIterator<Item = &'a str>,
) -> Option<&'a str> {
    let lower = wanted.to_ascii_lowercase();
    let mut best: Option<(usize, &str)> = None;
    for candidate in candidates {
        let distance = edit_distance(&lower, &candidate.to_ascii_lowercase());
        let close_enough = distance <= 2.max(wanted.len() / 4);
        if close_enough && best.is_none_or(|(d, _)| distance < d) {
            best = Some((distance, candidate));
        }
    }
    best.map(|(_, c)| c)
}

/// At most `max` bytes of `text`, cut at a character boundary.
pub fn truncate(text: &str, max: usize) -> &str {
    if text.len() <= max {
        return text;
    }
    let mut end = max;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    &text[..end]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn suggests_near_misses_only() {
        let names = ["account", "websiteID", "sessionID", "query"];
        assert_eq!(did_you_mean("sessionId", names), Some("sessionID"));
        assert_eq!(did_you_mean("session_id", names), Some("sessionID"));
        assert_eq!(did_you_mean("acount", names), Some("account"));
        assert_eq!(did_you_mean("color", names), None);
        assert_eq!(edit_distance("kitten", "sitting"), 3);
    }
}
