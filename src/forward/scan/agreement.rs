//! What the envelope scanner promises, written as one check that its property test and its
//! fuzz target both run on every body they make.
//!
//! For any bytes, `envelope` answers without panicking, and:
//! - when serde_json reads the body as a JSON object, the scanner's fields are serde_json's,
//!   byte for byte: `error` and `reason` after the envelope's typing rules, `data` at the very
//!   range serde_json found it (so it parses to the same value), a later duplicate member
//!   overriding an earlier one as in `serde_json::Value`. The one exception is the documented
//!   fast path's trust: a compact body that opens with the documented prefix and has members
//!   after `data` gets everything up to the final brace as `data`;
//! - otherwise the answer is the fast path's (for a body in the documented shape) or the
//!   lenient reading below: the envelope's own skeleton is checked exactly (braces, keys,
//!   `:`, `,`, nothing after it, `error` a boolean, `reason` a string or null), and each value
//!   is taken by its extent — a string to its closing quote, a container to its matching
//!   bracket, any other token to the next delimiter — without checking what is inside it.
//!
//! The lenient reading is a recursive descent, written apart from the scanner's table-driven
//! loops; on every body serde_json accepts it must also agree with serde_json, which keeps
//! the model itself honest.

use std::ops::Range;

use serde::de::{Deserialize, Deserializer, MapAccess, Visitor};
use serde_json::value::RawValue;

use super::{Fields, envelope};

/// Checks one body against the promise above; panics, saying what differs, when it is broken.
pub fn check(body: &[u8]) {
    let got = envelope(body);
    let shown = String::from_utf8_lossy(body);
    let fast = fast_path(body);
    let lenient = Lenient::read(body);
    match serde_json::from_slice::<Members<'_>>(body) {
        Ok(Members(members)) => {
            let want = typed(body, &members);
            if let Some(lenient) = &lenient {
                assert_eq!(
                    lenient, &want,
                    "the lenient model disagrees with serde: {shown}"
                );
            }
            if fast.is_some() && members.len() > 3 {
                // Members after `data`: the fast path's documented trust.
                assert_eq!(got, fast, "fast path: {shown}");
                return;
            }
            assert_eq!(got, want, "serde_json reads this body otherwise: {shown}");
            if let Some(Fields {
                data: Some(data), ..
            }) = &got
                && let Some((_, raw)) = members.iter().rev().find(|(key, _)| key == "data")
                && let (Ok(ours), Ok(theirs)) = (
                    serde_json::from_slice::<serde_json::Value>(&body[data.clone()]),
                    serde_json::from_str::<serde_json::Value>(raw.get()),
                )
            {
                assert_eq!(ours, theirs, "data parses otherwise: {shown}");
            }
        }
        Err(_) => {
            if fast.is_some() {
                assert_eq!(got, fast, "fast path: {shown}");
            } else if let Some(lenient) = lenient {
                assert_eq!(got, lenient, "lenient reading: {shown}");
            }
        }
    }
}

/// A JSON object's members in order, values left raw, as serde_json reads them.
struct Members<'a>(Vec<(String, &'a RawValue)>);

impl<'de> Deserialize<'de> for Members<'de> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Object;
        impl<'de> Visitor<'de> for Object {
            type Value = Members<'de>;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("a JSON object")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
                let mut members = Vec::new();
                while let Some(member) = map.next_entry::<String, &'de RawValue>()? {
                    members.push(member);
                }
                Ok(Members(members))
            }
        }
        deserializer.deserialize_map(Object)
    }
}

/// Where a raw value borrowed from `body` lies in it.
fn range_in(body: &[u8], part: &str) -> Range<usize> {
    let start = part.as_ptr() as usize - body.as_ptr() as usize;
    start..start + part.len()
}

/// The envelope's typing rules over members read by serde_json.
fn typed<'a>(body: &'a [u8], members: &[(String, &'a RawValue)]) -> Option<Fields<'a>> {
    let mut fields = Fields::default();
    for (key, value) in members {
        let value = range_in(body, value.get());
        apply(&mut fields, key.as_bytes(), body, value)?;
    }
    Some(fields)
}

/// One member's effect on the fields; `None` when its value has the wrong type.
fn apply<'a>(
    fields: &mut Fields<'a>,
    key: &[u8],
    body: &'a [u8],
    value: Range<usize>,
) -> Option<()> {
    let text = &body[value.clone()];
    match key {
        b"error" => {
            fields.error = match text {
                b"true" => true,
                b"false" => false,
                _ => return None,
            }
        }
        b"reason" => {
            fields.reason = match text {
                b"null" => None,
                [b'"', ..] => Some(text),
                _ => return None,
            }
        }
        b"data" => fields.data = (text != b"null").then_some(value),
        _ => {}
    }
    Some(())
}

/// The documented fast path, restated: the compact prefix, then everything between it and the
/// final brace is `data` when it opens and closes as one object or one list.
fn fast_path(body: &[u8]) -> Option<Fields<'_>> {
    let rest = body.strip_prefix(br#"{"error":"#)?;
    let (error, rest) = match rest.strip_prefix(b"false") {
        Some(rest) => (false, rest),
        None => (true, rest.strip_prefix(b"true")?),
    };
    let rest = rest.strip_prefix(br#","reason":""#)?;
    let reason_start = body.len() - rest.len() - 1;
    let len = rest.iter().position(|&b| b == b'"' || b == b'\\')?;
    if rest[len] != b'"' {
        return None;
    }
    let reason = &body[reason_start..reason_start + len + 2];
    let rest = rest[len + 1..].strip_prefix(br#","data":"#)?;
    let start = body.len() - rest.len();
    let end = trim_end(trim_end(body).strip_suffix(b"}")?).len();
    if end <= start {
        return None;
    }
    match (body[start], body[end - 1]) {
        (b'{', b'}') | (b'[', b']') => Some(Fields {
            error,
            reason: Some(reason),
            data: Some(start..end),
        }),
        _ => None,
    }
}

fn trim_end(bytes: &[u8]) -> &[u8] {
    let len = bytes
        .iter()
        .rposition(|b| !b" \t\n\r".contains(b))
        .map_or(0, |last| last + 1);
    &bytes[..len]
}

/// The lenient reading, by recursive descent. Nesting deeper than `DEEPEST` makes it abstain
/// (the scanner itself has no such limit), so that arbitrary input cannot exhaust the stack.
struct Lenient<'a> {
    body: &'a [u8],
    at: usize,
}

const DEEPEST: usize = 256;

/// Why the lenient reading gave no answer.
enum Stop {
    Refused,
    TooDeep,
}

impl<'a> Lenient<'a> {
    /// `None` when the model abstains; `Some(None)` when it refuses the body.
    fn read(body: &'a [u8]) -> Option<Option<Fields<'a>>> {
        match (Lenient { body, at: 0 }).envelope() {
            Ok(fields) => Some(Some(fields)),
            Err(Stop::Refused) => Some(None),
            Err(Stop::TooDeep) => None,
        }
    }

    fn envelope(&mut self) -> Result<Fields<'a>, Stop> {
        let mut fields = Fields::default();
        self.ws();
        self.eat(b'{')?;
        self.ws();
        if self.eat(b'}').is_err() {
            loop {
                let key = self.string()?;
                let key = decode_key(&self.body[key]).ok_or(Stop::Refused)?;
                self.ws();
                self.eat(b':')?;
                self.ws();
                let value = self.value(0)?;
                apply(&mut fields, &key, self.body, value).ok_or(Stop::Refused)?;
                self.ws();
                if self.eat(b',').is_ok() {
                    self.ws();
                } else {
                    self.eat(b'}')?;
                    break;
                }
            }
        }
        self.ws();
        if self.at == self.body.len() {
            Ok(fields)
        } else {
            Err(Stop::Refused)
        }
    }

    fn peek(&self) -> Option<u8> {
        self.body.get(self.at).copied()
    }

    fn eat(&mut self, byte: u8) -> Result<(), Stop> {
        if self.peek() == Some(byte) {
            self.at += 1;
            Ok(())
        } else {
            Err(Stop::Refused)
        }
    }

    fn ws(&mut self) {
        while self.peek().is_some_and(|b| b" \t\n\r".contains(&b)) {
            self.at += 1;
        }
    }

    fn string(&mut self) -> Result<Range<usize>, Stop> {
        let start = self.at;
        self.eat(b'"')?;
        loop {
            match self.peek().ok_or(Stop::Refused)? {
                b'"' => {
                    self.at += 1;
                    return Ok(start..self.at);
                }
                b'\\' => self.at += 2,
                _ => self.at += 1,
            }
        }
    }

    fn value(&mut self, depth: usize) -> Result<Range<usize>, Stop> {
        let start = self.at;
        match self.peek().ok_or(Stop::Refused)? {
            b'"' => return self.string(),
            b'{' => self.container(b'}', depth)?,
            b'[' => self.container(b']', depth)?,
            _ => {
                while self.peek().is_some_and(|b| !b",}]:\" \t\n\r".contains(&b)) {
                    self.at += 1;
                }
            }
        }
        if self.at == start {
            Err(Stop::Refused)
        } else {
            Ok(start..self.at)
        }
    }

    /// On an opening bracket: up to and past its matching `close`, whatever lies between.
    fn container(&mut self, close: u8, depth: usize) -> Result<(), Stop> {
        if depth == DEEPEST {
            return Err(Stop::TooDeep);
        }
        self.at += 1;
        loop {
            match self.peek().ok_or(Stop::Refused)? {
                b'"' => {
                    self.string()?;
                }
                b'{' | b'[' => {
                    self.value(depth + 1)?;
                }
                b if b == close => {
                    self.at += 1;
                    return Ok(());
                }
                b'}' | b']' => return Err(Stop::Refused),
                _ => self.at += 1,
            }
        }
    }
}

/// A key as JSON means it (escapes decoded); `None` when its escapes are not valid JSON.
fn decode_key(raw: &[u8]) -> Option<Vec<u8>> {
    if raw.contains(&b'\\') {
        serde_json::from_slice::<String>(raw)
            .ok()
            .map(String::into_bytes)
    } else {
        Some(raw[1..raw.len() - 1].to_vec())
    }
}
