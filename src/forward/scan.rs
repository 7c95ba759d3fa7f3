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
//! `crisp_invalid_response`. A body cut short is no concern here: the transport refuses an
//! answer that ends before its length or its last chunk.
//!
//! What exactly it promises, for any bytes, is written as one executable check in `agreement`,
//! run by the property test below and by the fuzz target in `fuzz/` (which compiles this file
//! and that one on their own, so nothing here is exported for it).

use std::ops::Range;

// Named by path so that it resolves the same when the fuzz crate compiles this file.
#[cfg(test)]
#[path = "scan/agreement.rs"]
mod agreement;

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
/// boolean, or its `reason` is neither a string nor null, or a key's escapes are not JSON.
pub fn envelope(body: &[u8]) -> Option<Fields<'_>> {
    documented(body).or_else(|| scanned(body))
}

/// Crisp's answer exactly as its reference documents it — compact, `error`, `reason`, then an
/// object or array `data` closed by the envelope's last brace — is sliced without reading
/// `data` at all. This trusts Crisp for two things a reverse proxy trusts its upstream for:
/// that `data` is well-formed, and that no member follows it (with one, the slice would carry
/// it along). Any other shape goes through the structural scan.
fn documented(body: &[u8]) -> Option<Fields<'_>> {
    documented_in(std::slice::from_ref(&body)).map(|at| at.fields(body))
}

/// [`documented`], for a body kept in the pieces it arrived in: the same answer as for the
/// pieces joined, with `data`'s range counted in the joined bytes, provided the envelope's
/// prefix up to `data` lies in the first piece (it is `None` otherwise, and the caller joins
/// the pieces to scan them).
pub fn documented_in<P: AsRef<[u8]>>(pieces: &[P]) -> Option<Documented> {
    let body = pieces.first()?.as_ref();
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
    let total = pieces.iter().map(|p| p.as_ref().len()).sum();
    let close = rposition(pieces, total, |b| !is_ws(b))?;
    let end = rposition(pieces, close, |b| !is_ws(b))? + 1;
    if byte_at(pieces, close) != b'}' || end <= start {
        return None;
    }
    match (byte_at(pieces, start), byte_at(pieces, end - 1)) {
        (b'{', b'}') | (b'[', b']') => Some(Documented {
            error,
            reason: reason_start..start - b",\"data\":".len(),
            data: start..end,
        }),
        _ => None,
    }
}

/// Where the documented layout's fields lie: `reason` within the first piece, `data` in the
/// pieces joined.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Documented {
    pub error: bool,
    pub reason: Range<usize>,
    pub data: Range<usize>,
}

impl Documented {
    /// The fields, with `reason` borrowed from `first`, the body's first piece.
    pub fn fields(self, first: &[u8]) -> Fields<'_> {
        Fields {
            error: self.error,
            reason: Some(&first[self.reason]),
            data: Some(self.data),
        }
    }
}

/// The index, counted in the joined pieces, of the last byte before `before` that `wanted`
/// accepts.
fn rposition<P: AsRef<[u8]>>(
    pieces: &[P],
    before: usize,
    wanted: impl Fn(u8) -> bool,
) -> Option<usize> {
    let mut end: usize = pieces.iter().map(|p| p.as_ref().len()).sum();
    for piece in pieces.iter().rev() {
        let piece = piece.as_ref();
        let start = end - piece.len();
        if start < before {
            let within = &piece[..before.min(end) - start];
            if let Some(at) = within.iter().rposition(|&b| wanted(b)) {
                return Some(start + at);
            }
        }
        end = start;
    }
    None
}

/// The byte at `at`, counted in the joined pieces; `at` must be within them.
fn byte_at<P: AsRef<[u8]>>(pieces: &[P], mut at: usize) -> u8 {
    for piece in pieces {
        let piece = piece.as_ref();
        if at < piece.len() {
            return piece[at];
        }
        at -= piece.len();
    }
    unreachable!("a byte past the end of the pieces")
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
        // A key is compared as JSON means it: `"d\u0061ta"` is `data`. Escaped keys are rare
        // enough that decoding them costs nothing on a real answer.
        let decoded: String;
        let key = match &body[i..key_end] {
            quoted if quoted.contains(&b'\\') => {
                decoded = serde_json::from_slice(quoted).ok()?;
                decoded.as_bytes()
            }
            quoted => &quoted[1..quoted.len() - 1],
        };
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

    /// Found by the property test: keys were compared as raw bytes, so `"d\u0061ta"` (which
    /// is `data`) was skipped as an unknown member and its `data` lost.
    #[test]
    fn escaped_keys_are_read_as_json_means_them() {
        agrees_with_serde(r#"{"\u0065rror":true,"re\u0061son":"r","d\u0061ta":{"x":1}}"#);
        agrees_with_serde(r#"{"reason":null,"d\u0061t\u0061":[2]}"#);
        let body = br#"{"error":false,"d\u0061ta":{"x":[1]}}"#;
        assert_eq!(
            envelope(body).and_then(|f| f.data).map(|d| &body[d]),
            Some(&br#"{"x":[1]}"#[..])
        );
        // A wrongly typed field stays refused under an escaped name, and so does a key that
        // is not a JSON string.
        assert_eq!(envelope(br#"{"\u0065rror":"no","data":1}"#), None);
        assert_eq!(envelope(br#"{"\q":1,"data":1}"#), None);
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

    /// The envelope scanner against serde_json on generated Crisp-shaped bodies.
    mod properties {
        use super::super::agreement::check;
        use super::super::{documented, documented_in, scanned};
        use proptest::prelude::*;

        /// A JSON value to print; `Raw` is a token that is not JSON (only in faulty bodies).
        #[derive(Debug, Clone)]
        enum Json {
            Null,
            Bool(bool),
            Number(String),
            Str(String),
            Array(Vec<Json>),
            Object(Vec<(String, Json)>),
            Raw(&'static [u8]),
        }

        /// Tokens that break JSON's grammar but not a value's extent.
        const NOT_JSON: &[&[u8]] = &[
            b"tru",
            b"nul",
            b"01",
            b"1.",
            b"+1",
            b"-",
            b"1e",
            b"NaN",
            b"'single'",
            b"\"bad \\q escape\"",
            b"\"raw\ncontrol\"",
            b"\"\xff\xfe not utf-8\"",
            b"\"\\ud800 lone surrogate\"",
            b"1 2",
            b"[1 2]",
            b"{\"a\" 1}",
            b"{1:2}",
            b"[,]",
            b"{\"a\":1,}",
        ];

        fn text() -> impl Strategy<Value = String> {
            let special = prop::sample::select(vec![
                '"', '\\', '/', '\n', '\t', '\u{0}', '\u{1f}', '{', '}', '[', ']', ',', ':', 'é',
                '🙂', '\u{2028}', 'a', 'z', ' ',
            ]);
            prop::collection::vec(prop_oneof![3 => special, 1 => any::<char>()], 0..10)
                .prop_map(|chars| chars.into_iter().collect())
        }

        fn number() -> impl Strategy<Value = String> {
            "-?(0|[1-9][0-9]{0,12})(\\.[0-9]{1,6})?([eE][+-]?[0-9]{1,2})?"
        }

        fn value(faulty: bool) -> impl Strategy<Value = Json> {
            let raw = if faulty { 1 } else { 0 };
            let leaf = prop_oneof![
                1 => Just(Json::Null),
                1 => any::<bool>().prop_map(Json::Bool),
                2 => number().prop_map(Json::Number),
                3 => text().prop_map(Json::Str),
                raw => prop::sample::select(NOT_JSON).prop_map(Json::Raw),
            ];
            leaf.prop_recursive(5, 48, 6, |inner| {
                prop_oneof![
                    prop::collection::vec(inner.clone(), 0..6).prop_map(Json::Array),
                    prop::collection::vec((key(), inner), 0..6).prop_map(Json::Object),
                ]
            })
        }

        fn key() -> impl Strategy<Value = String> {
            prop_oneof![
                2 => prop::sample::select(vec!["id", "data", "error", "reason", "session_id", "é"])
                    .prop_map(str::to_owned),
                1 => text(),
            ]
        }

        /// An envelope's members before printing: the three fields (each may be missing or,
        /// in faulty bodies, of the wrong type), extra members, and duplicates.
        #[derive(Debug, Clone)]
        struct Envelope {
            members: Vec<(String, Json)>,
        }

        fn envelope(faulty: bool) -> impl Strategy<Value = Envelope> {
            let error = prop_oneof![
                4 => any::<bool>().prop_map(|b| Some(Json::Bool(b))),
                1 => Just(None),
                if faulty { 1 } else { 0 } => value(false).prop_map(Some),
            ];
            let reason = prop_oneof![
                4 => text().prop_map(|t| Some(Json::Str(t))),
                1 => Just(Some(Json::Null)),
                1 => Just(None),
                if faulty { 1 } else { 0 } => value(false).prop_map(Some),
            ];
            let data = prop_oneof![8 => value(faulty).prop_map(Some), 1 => Just(None)];
            let extra = prop::collection::vec((key(), value(faulty)), 0..3);
            (error, reason, data, extra, any::<u64>()).prop_map(
                |(error, reason, data, extra, order)| {
                    let mut members: Vec<(String, Json)> = [
                        error.map(|v| ("error".to_owned(), v)),
                        reason.map(|v| ("reason".to_owned(), v)),
                        data.map(|v| ("data".to_owned(), v)),
                    ]
                    .into_iter()
                    .flatten()
                    .collect();
                    // Crisp's order most of the time; any order otherwise.
                    if order % 3 == 0 {
                        let mut rng = Rng(order | 1);
                        for i in (1..members.len()).rev() {
                            members.swap(i, (rng.next() % (i as u64 + 1)) as usize);
                        }
                    }
                    for member in extra {
                        let at = (Rng(order ^ 0x9e37).next() % (members.len() as u64 + 1)) as usize;
                        members.insert(at, member);
                    }
                    Envelope { members }
                },
            )
        }

        /// A small generator for layout choices, seeded by the test case so it shrinks.
        struct Rng(u64);

        impl Rng {
            fn next(&mut self) -> u64 {
                self.0 ^= self.0 << 13;
                self.0 ^= self.0 >> 7;
                self.0 ^= self.0 << 17;
                self.0
            }
            fn one_in(&mut self, n: u64) -> bool {
                self.next().is_multiple_of(n)
            }
        }

        /// How a body is laid out: compact (as Crisp sends it) or with whitespace anywhere;
        /// strings sometimes escape characters that need no escape.
        struct Printer {
            rng: Rng,
            pretty: bool,
            out: Vec<u8>,
        }

        impl Printer {
            fn ws(&mut self) {
                if self.pretty {
                    let ws = [&b""[..], b" ", b"\n  ", b"\t", b"\r\n"];
                    let pick = (self.rng.next() % ws.len() as u64) as usize;
                    self.out.extend_from_slice(ws[pick]);
                }
            }

            fn string(&mut self, text: &str) {
                self.out.push(b'"');
                for c in text.chars() {
                    match c {
                        '"' => self.out.extend_from_slice(b"\\\""),
                        '\\' => self.out.extend_from_slice(b"\\\\"),
                        '\n' if self.rng.one_in(2) => self.out.extend_from_slice(b"\\n"),
                        '\t' if self.rng.one_in(2) => self.out.extend_from_slice(b"\\t"),
                        '/' if self.rng.one_in(2) => self.out.extend_from_slice(b"\\/"),
                        c if u32::from(c) < 0x20 || self.rng.one_in(6) => {
                            let mut units = [0; 2];
                            for unit in c.encode_utf16(&mut units) {
                                let hex = if self.rng.one_in(2) {
                                    format!("\\u{unit:04x}")
                                } else {
                                    format!("\\u{unit:04X}")
                                };
                                self.out.extend_from_slice(hex.as_bytes());
                            }
                        }
                        c => self
                            .out
                            .extend_from_slice(c.encode_utf8(&mut [0; 4]).as_bytes()),
                    }
                }
                self.out.push(b'"');
            }

            fn value(&mut self, value: &Json) {
                match value {
                    Json::Null => self.out.extend_from_slice(b"null"),
                    Json::Bool(b) => {
                        self.out
                            .extend_from_slice(if *b { b"true" } else { b"false" })
                    }
                    Json::Number(n) => self.out.extend_from_slice(n.as_bytes()),
                    Json::Str(s) => self.string(s),
                    Json::Raw(raw) => self.out.extend_from_slice(raw),
                    Json::Array(items) => {
                        self.out.push(b'[');
                        for (i, item) in items.iter().enumerate() {
                            if i > 0 {
                                self.out.push(b',');
                            }
                            self.ws();
                            self.value(item);
                            self.ws();
                        }
                        self.out.push(b']');
                    }
                    Json::Object(members) => self.object(members),
                }
            }

            fn object(&mut self, members: &[(String, Json)]) {
                self.ws();
                self.out.push(b'{');
                for (i, (key, value)) in members.iter().enumerate() {
                    if i > 0 {
                        self.out.push(b',');
                    }
                    self.ws();
                    self.string(key);
                    self.ws();
                    self.out.push(b':');
                    self.ws();
                    self.value(value);
                    self.ws();
                }
                self.out.push(b'}');
                self.ws();
            }
        }

        fn print(envelope: &Envelope, seed: u64, pretty: bool) -> Vec<u8> {
            let mut printer = Printer {
                rng: Rng(seed | 1),
                pretty,
                out: Vec::new(),
            };
            printer.object(&envelope.members);
            printer.out
        }

        /// Crisp's documented layout: compact, `error`, a plain `reason`, an object or list
        /// `data`, sometimes with trailing whitespace.
        fn documented_body() -> impl Strategy<Value = Vec<u8>> {
            let data = value(false).prop_filter("an object or a list", |v| {
                matches!(v, Json::Object(_) | Json::Array(_))
            });
            (
                any::<bool>(),
                "[a-z_]{0,16}",
                data,
                any::<u64>(),
                prop::sample::select(vec!["", "\n", " \r\n"]),
            )
                .prop_map(|(error, reason, data, seed, tail)| {
                    let mut body = format!("{{\"error\":{error},\"reason\":\"{reason}\",\"data\":")
                        .into_bytes();
                    let mut printer = Printer {
                        rng: Rng(seed | 1),
                        pretty: false,
                        out: Vec::new(),
                    };
                    printer.value(&data);
                    body.extend_from_slice(&printer.out);
                    body.push(b'}');
                    body.extend_from_slice(tail.as_bytes());
                    body
                })
        }

        /// A way to break a valid body.
        #[derive(Debug, Clone)]
        enum Break {
            Truncate,
            Delete,
            Insert(u8),
            Replace(u8),
            Append(&'static [u8]),
        }

        fn broken() -> impl Strategy<Value = Break> {
            let byte = prop::sample::select(b"{}[]\",:\\ 0an\x00\xff".to_vec());
            prop_oneof![
                2 => Just(Break::Truncate),
                1 => Just(Break::Delete),
                1 => byte.clone().prop_map(Break::Insert),
                1 => byte.prop_map(Break::Replace),
                1 => prop::sample::select(vec![&b"}"[..], b"]", b",", b" x", b"{}", b"\""])
                    .prop_map(Break::Append),
            ]
        }

        fn apply(body: &mut Vec<u8>, fault: &Break, at: prop::sample::Index) {
            let at = at.index(body.len().max(1));
            match fault {
                Break::Truncate => body.truncate(at),
                Break::Delete => {
                    if at < body.len() {
                        body.remove(at);
                    }
                }
                Break::Insert(byte) => body.insert(at.min(body.len()), *byte),
                Break::Replace(byte) => {
                    if let Some(b) = body.get_mut(at) {
                        *b = *byte;
                    }
                }
                Break::Append(bytes) => body.extend_from_slice(bytes),
            }
        }

        proptest! {
            #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

            /// Valid envelopes in any order and layout: serde_json reads each one, and the
            /// scanner finds the same fields at the same bytes.
            #[test]
            fn valid_envelopes_agree_with_serde(env in envelope(false), seed in any::<u64>(), pretty in any::<bool>()) {
                let body = print(&env, seed, pretty);
                prop_assert!(serde_json::from_slice::<serde_json::Value>(&body).is_ok(), "generator made invalid JSON");
                check(&body);
            }

            /// Crisp's own layout takes the fast path, and agrees with serde_json there too.
            #[test]
            fn the_documented_layout_agrees_with_serde(body in documented_body()) {
                prop_assert!(documented(&body).is_some());
                check(&body);
            }

            /// Envelopes whose fields have the wrong type, or whose values are not JSON inside.
            #[test]
            fn faulty_envelopes_keep_the_promise(env in envelope(true), seed in any::<u64>(), pretty in any::<bool>()) {
                check(&print(&env, seed, pretty));
            }

            /// Valid bodies, then truncated or with a byte added, removed or changed. A
            /// truncated body is never taken by the structural scan.
            #[test]
            fn broken_bodies_keep_the_promise(
                env in envelope(false),
                seed in any::<u64>(),
                pretty in any::<bool>(),
                fault in broken(),
                at in any::<prop::sample::Index>(),
            ) {
                let mut body = print(&env, seed, pretty);
                let whole = body.len();
                apply(&mut body, &fault, at);
                if matches!(fault, Break::Truncate) && body.len() < whole {
                    let kept = body.len();
                    let blank = |b: &[u8]| b.iter().all(|b| b" \t\n\r".contains(b));
                    let cut_only_blank = blank(&print(&env, seed, pretty)[kept..]);
                    prop_assert!(cut_only_blank || scanned(&body).is_none());
                }
                check(&body);
            }

            /// A body cut into pieces, as it arrives, reads as the same body joined, whenever
            /// its prefix up to `data` lies in the first piece; otherwise it is left to the
            /// caller to join.
            #[test]
            fn pieces_read_as_the_joined_body(
                body in prop_oneof![
                    documented_body(),
                    prop::collection::vec(any::<u8>(), 0..48).prop_map(|bytes| {
                        [&br#"{"error":false,"reason":"resolved","data":"#[..], &bytes].concat()
                    }),
                ],
                cuts in prop::collection::vec(any::<prop::sample::Index>(), 0..5),
            ) {
                let mut cuts: Vec<usize> = cuts.iter().map(|cut| cut.index(body.len() + 1)).collect();
                cuts.sort_unstable();
                let mut pieces = Vec::new();
                let mut from = 0;
                for cut in cuts.into_iter().chain([body.len()]) {
                    pieces.push(&body[from..cut]);
                    from = cut;
                }
                let joined = documented(&body);
                let split = documented_in(&pieces).map(|at| at.fields(pieces[0]));
                let prefix_in_first = joined
                    .as_ref()
                    .and_then(|fields| fields.data.clone())
                    .is_some_and(|data| data.start <= pieces[0].len());
                if prefix_in_first {
                    prop_assert_eq!(split, joined);
                } else {
                    prop_assert!(split.is_none() || split == joined);
                }
            }

            /// Arbitrary bytes, and bytes after a valid prefix.
            #[test]
            fn any_bytes_keep_the_promise(bytes in prop::collection::vec(any::<u8>(), 0..64), documented_prefix in any::<bool>()) {
                let mut body = if documented_prefix {
                    br#"{"error":false,"reason":"resolved","data":"#.to_vec()
                } else {
                    Vec::new()
                };
                body.extend_from_slice(&bytes);
                check(&body);
            }
        }
    }
}
