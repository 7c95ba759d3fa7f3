//! Finds the fields of Crisp's envelope — `error`, `reason`, `data` — in an answer's bytes
//! without parsing `data`.
//!
//! A list of conversations is tens of kilobytes of `data` that the gateway only forwards.
//! Handing the body to `serde_json` (even into a `RawValue`) tokenises every byte of it, which
//! on the benchmark's 50 KB list cost more CPU than the rest of the call together.
//!
//! An answer in the documented shape — the compact prefix `{"error":false,"reason":"…","data":`
//! then an object or a list that ends just before the envelope's final `}` — is sliced without
//! reading `data` at all (`documented`). For any other, this scanner checks the envelope object
//! itself fully (its keys, `:` and `,`, that nothing follows it) and walks over each value
//! *structurally*, one table lookup per byte: strings are skipped to their closing quote
//! (escapes understood), brackets must nest and match, so the value's extent is exact.
//!
//! Neither checks the grammar inside `data` (a number's digits, commas between items), and
//! the documented path does not match the brackets inside it either: a malformed `data` is
//! forwarded as Crisp sent it, as a reverse proxy would. Crisp's answers come from its own
//! serialiser; MCP, which parses the envelope, answers a broken one with a 502
//! `crisp_invalid_response`.

use std::ops::Range;

/// The envelope's fields, borrowed from the body.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Fields<'a> {
    /// `error`, false when absent.
    pub error: bool,
    /// `reason` as a raw JSON string (quotes and escapes included); `None` when absent or null.
    pub reason: Option<&'a [u8]>,
    /// Where `data`'s raw JSON lies in the body; `None` when absent or null.
    pub data: Option<Range<usize>>,
}

/// Scans an envelope; `None` when the body is not a JSON object, or its `error` is not a
/// boolean, or its `reason` is neither a string nor null.
pub fn envelope(body: &[u8]) -> Option<Fields<'_>> {
    documented(body).or_else(|| scanned(body))
}

/// Crisp's answer exactly as its reference documents it — compact, `error`, `reason`, then an
/// object or array `data` closed by the envelope's last brace — is sliced without reading
/// `data` at all. This trusts Crisp for two things a reverse proxy trusts its upstream for:
/// that `data` is well-formed, and that no member follows it (with one, the slice would carry
/// it along). Any other shape goes through the structural scan.
fn documented(body: &[u8]) -> Option<Fields<'_>> {
    let rest = body.strip_prefix(b"{\"error\":")?;
    let (error, rest) = match rest.strip_prefix(b"false") {
        Some(rest) => (false, rest),
        None => (true, rest.strip_prefix(b"true")?),
    };
    let rest = rest.strip_prefix(b",\"reason\":\"")?;
    let reason_start = body.len() - rest.len() - 1;
    let quote = rest.iter().position(|&b| b == b'"' || b == b'\\')?;
    if rest[quote] != b'"' {
        return None;
    }
    let rest = rest[quote + 1..].strip_prefix(b",\"data\":")?;
    let start = body.len() - rest.len();
    let close = body.iter().rposition(|&b| !is_ws(b))?;
    let end = body[..close].iter().rposition(|&b| !is_ws(b))? + 1;
    if body[close] != b'}' || end <= start {
        return None;
    }
    match (body[start], body[end - 1]) {
        (b'{', b'}') | (b'[', b']') => Some(Fields {
            error,
            reason: Some(&body[reason_start..start - b",\"data\":".len()]),
            data: Some(start..end),
        }),
        _ => None,
    }
}

/// Any JSON object: walks the members, skipping each value structurally.
fn scanned(body: &[u8]) -> Option<Fields<'_>> {
    let mut fields = Fields::default();
    let mut i = skip_ws(body, 0);
    expect(body, i, b'{')?;
    i = skip_ws(body, i + 1);
    if body.get(i) == Some(&b'}') {
        return rest_is_blank(body, i + 1).then_some(fields);
    }
    loop {
        expect(body, i, b'"')?;
        let key_end = skip_string(body, i)?;
        let key = &body[i + 1..key_end - 1];
        i = skip_ws(body, key_end);
        expect(body, i, b':')?;
        let start = skip_ws(body, i + 1);
        let end = skip_value(body, start)?;
        let value = &body[start..end];
        match key {
            b"error" => {
                fields.error = match value {
                    b"true" => true,
                    b"false" => false,
                    _ => return None,
                }
            }
            b"reason" => {
                fields.reason = match value.first() {
                    Some(b'"') => Some(value),
                    _ if value == b"null" => None,
                    _ => return None,
                }
            }
            b"data" => fields.data = (value != b"null").then_some(start..end),
            _ => {}
        }
        i = skip_ws(body, end);
        match body.get(i) {
            Some(b',') => i = skip_ws(body, i + 1),
            Some(b'}') => return rest_is_blank(body, i + 1).then_some(fields),
            _ => return None,
        }
    }
}

fn expect(body: &[u8], at: usize, byte: u8) -> Option<()> {
    (body.get(at) == Some(&byte)).then_some(())
}

fn is_ws(byte: u8) -> bool {
    matches!(byte, b' ' | b'\t' | b'\n' | b'\r')
}

fn skip_ws(body: &[u8], mut at: usize) -> usize {
    while body.get(at).is_some_and(|&b| is_ws(b)) {
        at += 1;
    }
    at
}

fn rest_is_blank(body: &[u8], at: usize) -> bool {
    skip_ws(body, at) == body.len()
}

/// What a byte means to the scanner outside strings (`STRUCTURE`) and inside them (`STRING`).
/// Zero is "nothing to do", so the hot loops are one table lookup per byte.
const STRUCTURE: [u8; 256] = table(b"\"{[}]");
const STRING: [u8; 256] = table(b"\"\\");

const fn table(bytes: &[u8]) -> [u8; 256] {
    let mut table = [0; 256];
    let mut i = 0;
    while i < bytes.len() {
        table[bytes[i] as usize] = 1;
        i += 1;
    }
    table
}

/// The index of the first byte at or after `at` that `class` marks.
fn next_marked(body: &[u8], at: usize, class: &[u8; 256]) -> Option<usize> {
    body.get(at..)?
        .iter()
        .position(|&b| class[usize::from(b)] != 0)
        .map(|offset| at + offset)
}

/// `at` is on an opening quote; returns the index just past the closing one.
fn skip_string(body: &[u8], at: usize) -> Option<usize> {
    let mut i = at + 1;
    loop {
        i = next_marked(body, i, &STRING)?;
        if body[i] == b'\\' {
            // The escaped byte is never the closing quote (`\"`) nor another escape (`\\`).
            i += 2;
        } else {
            return Some(i + 1);
        }
    }
}

/// Returns the index just past the value starting at `at`.
fn skip_value(body: &[u8], at: usize) -> Option<usize> {
    match *body.get(at)? {
        b'"' => skip_string(body, at),
        b'{' | b'[' => skip_nested(body, at),
        _ => {
            // A number or a literal: up to the next delimiter.
            let len = body[at..]
                .iter()
                .position(|&b| matches!(b, b',' | b'}' | b']' | b':' | b'"') || is_ws(b))
                .unwrap_or(body.len() - at);
            (len > 0).then_some(at + len)
        }
    }
}

/// An object or array: brackets must match, strings are skipped whole.
fn skip_nested(body: &[u8], at: usize) -> Option<usize> {
    // The closers still owed, innermost last; deep nesting only grows the stack.
    let mut open: Vec<u8> = Vec::with_capacity(16);
    let mut i = at;
    loop {
        i = next_marked(body, i, &STRUCTURE)?;
        match body[i] {
            b'"' => {
                i = skip_string(body, i)?;
                continue;
            }
            b'{' => open.push(b'}'),
            b'[' => open.push(b']'),
            closer => {
                if open.pop() != Some(closer) {
                    return None;
                }
                if open.is_empty() {
                    return Some(i + 1);
                }
            }
        }
        i += 1;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde::Deserialize;
    use serde_json::value::RawValue;

    /// What serde_json makes of the same envelope, for comparison.
    #[derive(Deserialize)]
    struct Reference<'a> {
        #[serde(default)]
        error: bool,
        #[serde(default, borrow)]
        reason: Option<&'a RawValue>,
        #[serde(default, borrow)]
        data: Option<&'a RawValue>,
    }

    fn agrees_with_serde(body: &str) {
        let reference: Reference<'_> = serde_json::from_str(body).expect("valid test input");
        let fields = envelope(body.as_bytes()).unwrap_or_else(|| panic!("scan failed: {body}"));
        assert_eq!(fields.error, reference.error, "{body}");
        let reason = reference.reason.map(RawValue::get).filter(|r| *r != "null");
        assert_eq!(
            fields
                .reason
                .map(|r| std::str::from_utf8(r).expect("utf-8")),
            reason,
            "{body}"
        );
        assert_eq!(
            fields.data.map(|d| &body[d]),
            reference.data.map(RawValue::get),
            "{body}"
        );
    }

    #[test]
    fn finds_the_fields_exactly_where_serde_does() {
        for body in [
            r#"{"error":false,"reason":"resolved","data":{"a":[1,2,{"b":"}]"}]}}"#,
            r#"{"error":false,"reason":"resolved","data":[]}"#,
            r#"{"error":false,"reason":"resolved","data":"a \"quoted\" \\ string"}"#,
            r#"{"error":false,"reason":"resolved","data":-12.5e3}"#,
            r#"{"error":false,"reason":"resolved","data":null}"#,
            r#"{"error":true,"reason":"invalid_session","data":{"message":"no [such] {session}"}}"#,
            r#"{"error":false,"reason":null}"#,
            r#"{"data":{"x":"\\"},"reason":"r","error":false}"#,
            r#"{"data":{"k\"ey":"\u00e9\n"},"extra":[true,false,null]}"#,
            "  {\n  \"error\" : false ,\n  \"data\" :\t[ 1 , { } ]\n}\n",
            r#"{"error":false,"reason":"résolu","data":{"emoji":"🙂","nested":[[[["deep"]]]]}}"#,
            "{}",
        ] {
            agrees_with_serde(body);
        }
    }

    #[test]
    fn agrees_with_serde_on_generated_values() {
        // A small deterministic generator: nested objects, arrays, strings with escapes and
        // brackets, numbers and literals, printed compact and pretty.
        let mut seed = 0x2545_f491_4f6c_dd1d_u64;
        let mut next = move || {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed
        };
        fn value(next: &mut dyn FnMut() -> u64, depth: u32) -> serde_json::Value {
            use serde_json::Value;
            let strings = [
                "plain",
                "with \"quotes\"",
                "back\\slash",
                "{[}]",
                "line\nbreak",
                "é🙂",
                "",
            ];
            match next() % if depth > 4 { 4 } else { 6 } {
                0 => Value::from(strings[(next() % strings.len() as u64) as usize]),
                1 => Value::from((next() % 2_000_000) as i64 - 1_000_000),
                2 => Value::from(next().is_multiple_of(2)),
                3 => Value::Null,
                4 => (0..next() % 5).map(|_| value(next, depth + 1)).collect(),
                _ => {
                    let mut map = serde_json::Map::new();
                    for i in 0..next() % 5 {
                        map.insert(
                            format!("{}{i}", strings[(next() % strings.len() as u64) as usize]),
                            value(next, depth + 1),
                        );
                    }
                    serde_json::Value::Object(map)
                }
            }
        }
        for _ in 0..500 {
            let data = value(&mut next, 0);
            let envelope = serde_json::json!({"error": false, "reason": "resolved", "data": data});
            agrees_with_serde(&envelope.to_string());
            agrees_with_serde(&serde_json::to_string_pretty(&envelope).expect("prints"));
        }
    }

    #[test]
    fn the_documented_shape_is_sliced_without_reading_data() {
        let body = br#"{"error":false,"reason":"resolved","data":[{"a":"]"},2]}"#;
        let fields = documented(body).expect("documented shape");
        assert_eq!(
            &body[fields.data.clone().expect("data")],
            br#"[{"a":"]"},2]"#
        );
        assert_eq!(fields.reason, Some(&br#""resolved""#[..]));
        assert!(!fields.error);
        // Not read: a malformed `data` is forwarded as Crisp sent it.
        let body = br#"{"error":false,"reason":"resolved","data":{"a":]}}"#;
        assert_eq!(
            &body[envelope(body).and_then(|f| f.data).expect("data")],
            br#"{"a":]}"#
        );
        // Other shapes take the scan: a scalar `data`, a member after `data`, whitespace.
        for other in [
            &br#"{"error":false,"reason":"resolved","data":5}"#[..],
            br#"{"error":false,"reason":"resolved","data":{"a":1},"more":2}"#,
            br#"{"error":false,"reason":"re\"solved","data":{}}"#,
            br#"{ "error":false,"reason":"resolved","data":{}}"#,
        ] {
            assert!(
                documented(other).is_none(),
                "{}",
                String::from_utf8_lossy(other)
            );
        }
    }

    #[test]
    fn refuses_what_is_not_an_envelope() {
        for body in [
            "",
            "[]",
            "null",
            r#"{"error":false,"data":{"a":1}"#,
            r#"{"error":false,"data":{"a":1}} trailing"#,
            r#"{"error":false,"data":{"a":1]}"#,
            r#"{"error":false,"data":"unterminated}"#,
            r#"{"error":false,"data":"ends in escape\"}"#,
            r#"{"error":"no","data":1}"#,
            r#"{"error":false,"reason":42,"data":1}"#,
            r#"{"error":false "data":1}"#,
            r#"{"error":false,"data":}"#,
            r#"{"error":false,"data":1,}"#,
            r#"{error:false}"#,
            "<html>Bad gateway</html>",
        ] {
            assert_eq!(envelope(body.as_bytes()), None, "{body}");
        }
    }
}
