//! The caller's JSON body, checked against the action's parameters from the catalog.
//!
//! Every mistake gets a 400 that names the field and says how to fix it: unknown fields (with
//! the near miss, `sessionId` → `sessionID`), missing path parameters, path values that would
//! escape their segment, `body`/`query` that are not JSON (or a query string), and a `body` that
//! does not fit the catalog's type for it (a missing required field, a wrong type).

use std::borrow::Cow;

use bytes::Bytes;
use serde::de::{Deserialize, Deserializer, MapAccess, Visitor};
use serde_json::value::RawValue;
use serde_json::{Map, Value};

use crate::catalog::{Action, CATALOG, ParamKind, Shape, Ty};
use crate::error::{ApiError, Reason};
use crate::kernel::text::did_you_mean;

/// Validated arguments of one call.
#[derive(Debug, Default, PartialEq)]
pub struct Args {
    pub account: Option<String>,
    /// Path parameter values given by the caller (defaults are applied later).
    pub path: Vec<(&'static str, String)>,
    /// The upstream JSON body, serialised.
    pub body: Option<Bytes>,
    /// `dry_run`: check everything and answer the Crisp request instead of sending it.
    pub dry_run: bool,
    /// `pages`: how many pages of a list to fetch and merge, from `pageNumber` on.
    pub pages: Option<u32>,
    /// `fields`: the dotted paths of each result item to keep.
    pub fields: Option<super::shape::Fields>,
    /// Why the body does not fit the catalog's type for it (a missing required field, a wrong
    /// type). `call` raises it as `invalid_body` once the key's scope allows the call, so a key
    /// that may not make the call is refused for that first.
    pub body_problem: Option<String>,
    pub query: Vec<(String, String)>,
}

/// The longest URL sent to Crisp: servers and proxies refuse far shorter URLs than a body
/// can carry, and a refusal after retries would hide which value was at fault.
pub const MAX_UPSTREAM_URL: usize = 8 * 1024;

impl Args {
    /// A bound on what the caller's path and query values add to the URL (each byte at most
    /// three once encoded): when it is far below the limit, the URL need not be measured.
    pub fn url_bytes_at_most(&self) -> usize {
        let path: usize = self.path.iter().map(|(_, v)| v.len()).sum();
        let query: usize = self.query.iter().map(|(k, v)| k.len() + v.len() + 2).sum();
        3 * (path + query)
    }

    /// The name and length of the longest path or query value, for the error message.
    pub fn longest_value(&self) -> Option<(String, usize)> {
        let path = self.path.iter().map(|(n, v)| ((*n).to_owned(), v.len()));
        let query = self.query.iter().map(|(k, v)| {
            (
                format!("query.{}", crate::kernel::text::truncate(k, 64)),
                v.len(),
            )
        });
        path.chain(query).max_by_key(|(_, len)| *len)
    }

    pub fn path_value(&self, name: &str) -> Option<&str> {
        self.path
            .iter()
            .find(|(n, _)| *n == name)
            .map(|(_, v)| v.as_str())
    }
}

fn invalid(reason: Reason, message: String) -> ApiError {
    ApiError::bad_request(reason, message)
}

fn field_list(action: &Action) -> String {
    action
        .params
        .iter()
        .map(|p| {
            if p.required {
                format!("{} (required)", p.name)
            } else {
                p.name.to_owned()
            }
        })
        .collect::<Vec<_>>()
        .join(", ")
}

/// Parses a request body (empty means `{}`).
///
/// Each field is read as the action's parameter needs it, straight from the body's bytes: a
/// path or account value is a string copied out once, and only `body`, `query` and the
/// gateway's options are parsed into a JSON value. A body that is not an object of distinct
/// fields takes the general path through `from_object`, which words every refusal.
pub fn parse(action: &Action, raw: &[u8]) -> Result<Args, ApiError> {
    if raw.iter().all(u8::is_ascii_whitespace) {
        return from_object(action, Map::new());
    }
    match serde_json::from_slice::<Fields<'_>>(raw) {
        Ok(fields) if fields.distinct(action) => {
            let mut args = Args::default();
            for (name, value) in &fields.0 {
                take_raw(action, &mut args, name, value)?;
            }
            complete(action, args)
        }
        _ => parse_value(action, raw),
    }
}

/// The general path: the body parsed into a JSON value, and every refusal worded from it.
fn parse_value(action: &Action, raw: &[u8]) -> Result<Args, ApiError> {
    match serde_json::from_slice::<Value>(raw) {
        Ok(Value::Object(map)) => from_object(action, map),
        Ok(other) => Err(invalid(
            Reason::InvalidJson,
            format!(
                "The request body must be a JSON object of the action's fields, not {}; `{}` takes: {}.",
                kind_of(&other),
                action.slug,
                field_list(action)
            ),
        )),
        Err(e) => Err(not_json(&e)),
    }
}

fn not_json(error: &serde_json::Error) -> ApiError {
    invalid(
        Reason::InvalidJson,
        format!(
            "The request body is not valid JSON ({error}); send a JSON object such as {{\"account\":\"main\"}}."
        ),
    )
}

pub fn from_object(action: &Action, object: Map<String, Value>) -> Result<Args, ApiError> {
    let mut args = Args::default();
    for (name, value) in object {
        take(action, &mut args, &name, value)?;
    }
    complete(action, args)
}

/// One field of the caller's object, read from its JSON text: a string for a path or account
/// parameter is taken as it is; anything else goes through `take` as a value.
fn take_raw(
    action: &Action,
    args: &mut Args,
    name: &str,
    value: &RawValue,
) -> Result<(), ApiError> {
    let text = value.get();
    if text.starts_with('"')
        && let Some(param) = action.param(name)
        && matches!(param.kind, ParamKind::Account | ParamKind::Path)
        && let Some(string) = string(text)
    {
        return take_scalar(action, args, param, string);
    }
    // The body parsed, so only what skipping a value does not check can fail here (nesting
    // past the parser's depth limit).
    let value = serde_json::from_str::<Value>(text).map_err(|e| not_json(&e))?;
    take(action, args, name, value)
}

/// The text of a JSON string. One without an escape is its bytes between the quotes (the
/// parser has checked them); only one with an escape is decoded.
fn string(json: &str) -> Option<String> {
    match json.strip_prefix('"').and_then(|s| s.strip_suffix('"')) {
        Some(plain) if !plain.contains('\\') => Some(plain.to_owned()),
        _ => serde_json::from_str(json).ok(),
    }
}

/// One field of the caller's object, checked against the action's parameter of that name.
fn take(action: &Action, args: &mut Args, name: &str, value: Value) -> Result<(), ApiError> {
    let Some(param) = action.param(name) else {
        return Err(unknown_field(action, name));
    };
    if value.is_null() {
        return Ok(());
    }
    match param.kind {
        ParamKind::Account | ParamKind::Path => {
            let text = scalar(action, param.name, value)?;
            take_scalar(action, args, param, text)?;
        }
        ParamKind::Body => {
            let (bytes, problem) = body(action, value)?;
            args.body = bytes;
            args.body_problem = problem;
        }
        ParamKind::Query => args.query = query(action, value)?,
        ParamKind::Option => option(action, args, param.name, &value)?,
    }
    Ok(())
}

/// An account or path parameter's text, checked.
fn take_scalar(
    action: &Action,
    args: &mut Args,
    param: &crate::catalog::Param,
    text: String,
) -> Result<(), ApiError> {
    check_page_number(param.name, &text)?;
    if param.kind == ParamKind::Account {
        args.account = Some(text);
    } else {
        check_segment(action, param.name, &text)?;
        args.path.push((param.name, text));
    }
    Ok(())
}

/// The checks that need every field: a required body and the path's required values.
fn complete(action: &Action, mut args: Args) -> Result<Args, ApiError> {
    if action.body_required && args.body.is_none() {
        args.body_problem = Some(missing_body(action));
    }
    for param in action
        .params
        .iter()
        .filter(|p| p.required && p.kind == ParamKind::Path)
    {
        if args.path_value(param.name).is_none() {
            let route = action
                .route
                .as_ref()
                .map(|r| format!(" ({} {})", r.method.as_str(), r.path.as_str()))
                .unwrap_or_default();
            return Err(invalid(
                Reason::MissingField,
                format!(
                    "`{}` is required by `{}`: it fills the `{{{}}}` segment of the Crisp path{route}.",
                    param.name, action.slug, param.name
                ),
            ));
        }
    }
    Ok(args)
}

fn missing_body(action: &Action) -> String {
    let types = CATALOG.types();
    let required = action
        .body
        .as_ref()
        .map(|ty| match ty {
            Ty::Named(id) => match &types.named(*id).shape {
                Shape::Fields(fields) => fields
                    .iter()
                    .filter(|f| f.required)
                    .map(|f| format!("`{}` ({})", f.name, types.describe(&f.ty)))
                    .collect::<Vec<_>>()
                    .join(", "),
                _ => types.describe(ty),
            },
            other => types.describe(other),
        })
        .unwrap_or_default();
    format!(
        "`{}` needs `body`: Crisp requires {required}. The OpenAPI document (`/openapi.json`) lists every field.",
        action.slug
    )
}

/// Checks a body against the catalog's type before Crisp sees it, so a missing field or a
/// wrong type is named here rather than lost in Crisp's terser refusal.
fn body_problem(action: &Action, value: &Value) -> Option<String> {
    let ty = action.body.as_ref()?;
    let mismatch = CATALOG.types().check(ty, value, "body").err()?;
    Some(if mismatch.found == "missing" {
        format!(
            "`{}` is missing: `{}` requires it ({}).",
            mismatch.path, action.slug, mismatch.expected
        )
    } else {
        format!("{mismatch} (`{}`).", action.slug)
    })
}

/// The gateway's own options: `dry_run`, `pages`, `fields`.
fn option(action: &Action, args: &mut Args, name: &str, value: &Value) -> Result<(), ApiError> {
    let wrong = |what: &str| {
        invalid(
            Reason::InvalidField,
            format!("`{name}` of `{}` must be {what}.", action.slug),
        )
    };
    match name {
        "dry_run" => args.dry_run = value.as_bool().ok_or_else(|| wrong("true or false"))?,
        "pages" => {
            let pages = value
                .as_u64()
                .or_else(|| value.as_str().and_then(|s| s.parse().ok()))
                .filter(|n| *n >= 1)
                .and_then(|n| u32::try_from(n).ok())
                .ok_or_else(|| wrong("a whole number of pages from 1"))?;
            args.pages = Some(pages);
        }
        "fields" => {
            let fields = super::shape::Fields::parse(value)
                .map_err(|e| invalid(Reason::InvalidField, format!("{e} (`{}`).", action.slug)))?;
            args.fields = Some(fields);
        }
        other => return Err(unknown_field(action, other)),
    }
    Ok(())
}

fn unknown_field(action: &Action, name: &str) -> ApiError {
    let hint = match name {
        "body" if action.param("query").is_some() => {
            " It is a read action: pass parameters in `query` instead.".to_owned()
        }
        "query" if action.param("body").is_some() => {
            " It is a write action: pass the payload in `body` instead.".to_owned()
        }
        _ => did_you_mean(name, action.params.iter().map(|p| p.name))
            .map(|m| format!(" Did you mean `{m}`?"))
            .unwrap_or_default(),
    };
    invalid(
        Reason::UnknownField,
        format!(
            "`{name}` is not a field of `{}`.{hint} Its fields are: {}.",
            action.slug,
            field_list(action)
        ),
    )
}

fn kind_of(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

/// A string field; numbers are accepted as their decimal text (`"pageNumber": 2`).
fn scalar(action: &Action, name: &str, value: Value) -> Result<String, ApiError> {
    let text = match value {
        Value::String(s) => s,
        Value::Number(n) => n.to_string(),
        other => {
            return Err(invalid(
                Reason::InvalidField,
                format!(
                    "`{name}` of `{}` must be a string, not {}.",
                    action.slug,
                    kind_of(&other)
                ),
            ));
        }
    };
    Ok(text)
}

fn check_page_number(name: &str, text: &str) -> Result<(), ApiError> {
    if name == "pageNumber" && !text.parse::<u32>().is_ok_and(|n| n >= 1) {
        return Err(invalid(
            Reason::InvalidField,
            format!("`pageNumber` must be a whole number from 1 (pages start at 1), not `{text}`."),
        ));
    }
    Ok(())
}

/// A path value must stay one segment: `..` would walk up Crisp's path, and an empty value
/// would silently call another route.
fn check_segment(action: &Action, name: &str, value: &str) -> Result<(), ApiError> {
    if value.trim().is_empty() || value == "." || value == ".." {
        return Err(invalid(
            Reason::InvalidPathValue,
            format!(
                "`{name}` of `{}` must be a non-empty value other than `.` or `..` (each path value is exactly one path segment).",
                action.slug
            ),
        ));
    }
    Ok(())
}

/// The serialised body, and why it does not fit its type if it does not.
fn body(action: &Action, value: Value) -> Result<(Option<Bytes>, Option<String>), ApiError> {
    let value = match value {
        Value::String(text) if text.trim().is_empty() => return Ok((None, None)),
        Value::String(text) => serde_json::from_str::<Value>(&text).map_err(|e| {
            invalid(
                Reason::InvalidBody,
                format!(
                    "`body` of `{}` holds text that is not valid JSON ({e}); send a JSON object, or a string holding one such as \"{{\\\"content\\\":\\\"Hi\\\"}}\".",
                    action.slug
                ),
            )
        })?,
        other => other,
    };
    match value {
        Value::Object(_) | Value::Array(_) => {
            let problem = body_problem(action, &value);
            Ok((Some(Bytes::from(value.to_string())), problem))
        }
        other => Err(invalid(
            Reason::InvalidBody,
            format!(
                "`body` of `{}` must be a JSON object (or a string holding one), not {}.",
                action.slug,
                kind_of(&other)
            ),
        )),
    }
}

fn query(action: &Action, value: Value) -> Result<Vec<(String, String)>, ApiError> {
    let bad = |detail: String| {
        invalid(
            Reason::InvalidQuery,
            format!(
                "`query` of `{}` {detail}; send an object such as {{\"per_page\":50}}, a string holding one, or a query string such as \"per_page=50&filter_unread=1\".",
                action.slug
            ),
        )
    };
    let object = match value {
        Value::Object(map) => map,
        Value::String(text) => {
            let text = text.trim();
            if text.is_empty() {
                return Ok(Vec::new());
            }
            if text.starts_with('{') {
                match serde_json::from_str::<Value>(text) {
                    Ok(Value::Object(map)) => map,
                    Ok(_) => return Err(bad("holds JSON that is not an object".into())),
                    Err(e) => return Err(bad(format!("is not valid JSON ({e})"))),
                }
            } else {
                return parse_query_string(text).map_err(bad);
            }
        }
        other => {
            return Err(bad(format!(
                "must be an object or a string, not {}",
                kind_of(&other)
            )));
        }
    };
    Ok(object
        .into_iter()
        .filter_map(|(name, value)| {
            let text = match value {
                Value::Null => return None,
                Value::String(s) => s,
                // Crisp's own clients send nested values JSON-encoded (filters, search arrays).
                Value::Array(_) | Value::Object(_) => value.to_string(),
                Value::Bool(b) => b.to_string(),
                Value::Number(n) => n.to_string(),
            };
            Some((name, text))
        })
        .collect())
}

fn parse_query_string(text: &str) -> Result<Vec<(String, String)>, String> {
    let decode = |part: &str| {
        percent_encoding::percent_decode_str(&part.replace('+', " "))
            .decode_utf8()
            .map(|s| s.into_owned())
            .map_err(|_| format!("has `{part}`, which is not valid percent-encoded UTF-8"))
    };
    text.trim_start_matches('?')
        .split('&')
        .filter(|pair| !pair.is_empty())
        .map(|pair| {
            let (name, value) = pair.split_once('=').unwrap_or((pair, ""));
            if name.is_empty() {
                return Err(format!("has a parameter with no name (`{pair}`)"));
            }
            Ok((decode(name)?, decode(value)?))
        })
        .collect()
}

/// The caller's object as its fields' names and JSON texts, in the order given.
struct Fields<'a>(Vec<(Cow<'a, str>, &'a RawValue)>);

impl Fields<'_> {
    /// Whether no parameter of the action is given twice (a JSON object's last value of a
    /// name counts, which only the general path keeps).
    fn distinct(&self, action: &Action) -> bool {
        let mut seen = 0u64;
        self.0.iter().all(|(name, _)| {
            match action.params.iter().position(|p| p.name == name) {
                Some(index) if index < 64 => {
                    let bit = 1u64 << index;
                    let first = seen & bit == 0;
                    seen |= bit;
                    first
                }
                Some(_) => false,
                // Refused as unknown where it stands, whether given once or more.
                None => true,
            }
        })
    }
}

impl<'de: 'a, 'a> Deserialize<'de> for Fields<'a> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Object;
        impl<'de> Visitor<'de> for Object {
            type Value = Fields<'de>;

            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("a JSON object")
            }

            fn visit_map<M: MapAccess<'de>>(self, mut map: M) -> Result<Fields<'de>, M::Error> {
                // Room for a call's usual few fields, so the first is not a reallocation.
                let mut fields = Vec::with_capacity(4);
                while let Some(Name(name)) = map.next_key()? {
                    fields.push((name, map.next_value()?));
                }
                Ok(Fields(fields))
            }
        }
        deserializer.deserialize_map(Object)
    }
}

/// A field's name, borrowed from the body unless it holds an escape.
#[derive(serde::Deserialize)]
struct Name<'a>(#[serde(borrow)] Cow<'a, str>);

#[cfg(test)]
mod tests {
    use super::*;
    use crate::catalog::CATALOG;

    fn action(slug: &str) -> &'static Action {
        CATALOG.get(slug).expect("action exists")
    }

    fn reason(err: ApiError) -> (String, String) {
        (err.reason().to_owned(), err.message())
    }

    /// What `parse` reads from the bytes is what the general path reads from a JSON value,
    /// refusals included, whatever form the fields take.
    #[test]
    fn fields_read_from_the_bytes_match_the_general_path() {
        let outcome = |result: Result<Args, ApiError>| result.map_err(reason);
        let cases = [
            ("get/conversation", r#"{"websiteID":"w1","sessionID":"s1"}"#),
            (
                "get/conversation",
                r#"{"sessionID":"s\u0031","websiteID":"w\"1"}"#,
            ),
            (
                "get/conversation",
                r#"{"websiteID":"w1","sessionID":"s1","websiteID":"w2"}"#,
            ),
            (
                "get/conversation",
                r#"{"websiteID":"..","sessionID":"s1","websiteID":"w2"}"#,
            ),
            ("get/conversation", r#"{"websiteID":42,"sessionID":null}"#),
            ("get/conversation", r#"{"websiteID":"w1","sessionId":"s1"}"#),
            (
                "get/conversation",
                r#"{"websiteID":["w1"],"sessionID":"s1"}"#,
            ),
            (
                "get/conversation",
                r#"{"account":"main","websiteID":"w1","sessionID":"s1"}"#,
            ),
            (
                "get/conversation",
                r#"{"account":7,"websiteID":"w1","sessionID":"s1"}"#,
            ),
            (
                "list/conversations",
                r#"{"websiteID":"w1","pageNumber":"0"}"#,
            ),
            (
                "list/conversations",
                r#"{"websiteID":"w1","pageNumber":3,"pages":2}"#,
            ),
            (
                "list/conversations",
                r#"{"websiteID":"w1","query":{"per_page":5},"dry_run":true}"#,
            ),
            (
                "send/message/in/conversation",
                r#"{"websiteID":"w1","sessionID":"s1","body":{"type":"text","from":"operator","origin":"chat","content":"Hi"}}"#,
            ),
            (
                "send/message/in/conversation",
                r#"{"websiteID":"w1","sessionID":"s1","body":"{\"content\":1}"}"#,
            ),
            (
                "send/message/in/conversation",
                r#"{"websiteID":"w1","sessionID":"s1"}"#,
            ),
            ("get/conversation", r#"[1,2]"#),
            ("get/conversation", r#"{"websiteID":"w1""#),
        ];
        for (slug, body) in cases {
            let action = action(slug);
            assert_eq!(
                outcome(parse(action, body.as_bytes())),
                outcome(parse_value(action, body.as_bytes())),
                "{slug} {body}"
            );
        }
        // A name given twice: its last value counts, as a JSON object's does.
        let args = parse(
            action("get/conversation"),
            br#"{"websiteID":"w1","sessionID":"s1","websiteID":"w2"}"#,
        )
        .expect("distinct values");
        assert_eq!(args.path_value("websiteID"), Some("w2"));
    }

    #[test]
    fn a_field_nested_past_the_parsers_limit_is_refused_not_dropped() {
        let deep = format!(
            r#"{{"websiteID":"w1","sessionID":"s1","body":{{"content":{}1{}}}}}"#,
            "[".repeat(200),
            "]".repeat(200)
        );
        let refused =
            parse(action("send/message/in/conversation"), deep.as_bytes()).expect_err("too deep");
        assert_eq!(refused.reason(), "invalid_json", "{}", refused.message());
    }

    #[test]
    fn query_forms_are_equivalent() {
        let list = action("list/conversations");
        let forms = [
            r#"{"query":"{\"per_page\":50,\"filter_unread\":1}"}"#,
            r#"{"query":{"per_page":50,"filter_unread":1}}"#,
            r#"{"query":"per_page=50&filter_unread=1"}"#,
        ];
        for form in forms {
            let args = parse(list, form.as_bytes()).expect(form);
            assert_eq!(
                args.query,
                [
                    ("per_page".into(), "50".into()),
                    ("filter_unread".into(), "1".into())
                ],
                "{form}"
            );
        }
        let nested =
            parse(list, br#"{"query":{"search_query":[{"criterion":"a"}]}}"#).expect("nested");
        assert_eq!(nested.query[0].1, r#"[{"criterion":"a"}]"#);
        let spaced = parse(list, br#"{"query":"search_query=jo%C3%A3o+silva"}"#).expect("decoded");
        assert_eq!(spaced.query[0].1, "jo\u{e3}o silva");
    }

    #[test]
    fn body_as_string_or_value() {
        let send = action("send/message/in/conversation");
        let a = parse(
            send,
            br#"{"sessionID":"s1","body":"{\"type\":\"text\",\"content\":\"Hi\"}"}"#,
        )
        .expect("string");
        let b = parse(
            send,
            br#"{"sessionID":"s1","body":{"type":"text","content":"Hi"}}"#,
        )
        .expect("value");
        assert_eq!(a.body, b.body);
        assert_eq!(a.path_value("sessionID"), Some("s1"));
    }

    #[test]
    fn mistakes_are_named() {
        let get = action("get/conversation");
        let (r, m) = reason(parse(get, br#"{"sessionId":"s"}"#).expect_err("typo"));
        assert_eq!(r, "unknown_field");
        assert!(m.contains("Did you mean `sessionID`"), "{m}");
        let (r, m) = reason(parse(get, b"{}").expect_err("missing"));
        assert_eq!(r, "missing_field");
        assert!(m.contains("`sessionID` is required"), "{m}");
        let (r, m) =
            reason(parse(get, br#"{"sessionID":"s","body":"{}"}"#).expect_err("body on read"));
        assert_eq!(r, "unknown_field");
        assert!(m.contains("`query`"), "{m}");
        for bad in [
            r#"{"sessionID":".."}"#,
            r#"{"sessionID":""}"#,
            r#"{"sessionID":"."}"#,
        ] {
            assert_eq!(
                reason(parse(get, bad.as_bytes()).expect_err(bad)).0,
                "invalid_path_value"
            );
        }
        assert_eq!(
            reason(parse(get, br#"{"sessionID":{"a":1}}"#).expect_err("object")).0,
            "invalid_field"
        );
        assert_eq!(
            reason(parse(get, b"[1]").expect_err("array")).0,
            "invalid_json"
        );
        assert_eq!(
            reason(parse(get, b"{nope").expect_err("json")).0,
            "invalid_json"
        );
        let list = action("list/conversations");
        assert_eq!(
            reason(parse(list, br#"{"pageNumber":0}"#).expect_err("page")).0,
            "invalid_field"
        );
        assert_eq!(
            reason(parse(list, br#"{"query":"{\"a\":"}"#).expect_err("query json")).0,
            "invalid_query"
        );
        assert_eq!(
            reason(parse(list, br#"{"query":[1]}"#).expect_err("query array")).0,
            "invalid_query"
        );
        let send = action("send/message/in/conversation");
        assert_eq!(
            reason(parse(send, br#"{"sessionID":"s","body":"{oops"}"#).expect_err("body")).0,
            "invalid_body"
        );
        assert_eq!(
            reason(parse(send, br#"{"sessionID":"s","body":7}"#).expect_err("scalar body")).0,
            "invalid_body"
        );
    }

    #[test]
    fn gateway_options_are_checked() {
        let list = action("list/conversations");
        for bad in [
            &br#"{"pages":0}"#[..],
            br#"{"pages":"x"}"#,
            br#"{"fields":7}"#,
        ] {
            assert_eq!(
                reason(parse(list, bad).expect_err("refused")).0,
                "invalid_field"
            );
        }
        let paged = parse(list, br#"{"pages":"3","fields":"session_id"}"#).expect("parses");
        assert_eq!(paged.pages, Some(3));
        assert!(paged.fields.is_some());
        let send = action("send/message/in/conversation");
        let (reason_, message) = reason(
            parse(send, br#"{"sessionID":"s","dry_run":"yes"}"#).expect_err("not a boolean"),
        );
        assert_eq!(reason_, "invalid_field");
        assert!(message.contains("true or false"), "{message}");
        // Options belong to their kind of action: no dry run of a read, no pages of a write.
        for (slug, raw) in [
            (
                "get/conversation",
                &br#"{"sessionID":"s","dry_run":true}"#[..],
            ),
            (
                "send/message/in/conversation",
                br#"{"sessionID":"s","pages":2}"#,
            ),
        ] {
            assert_eq!(
                reason(parse(action(slug), raw).expect_err("unknown")).0,
                "unknown_field"
            );
        }
    }

    #[test]
    fn bodies_are_checked_against_their_type() {
        let send = action("send/message/in/conversation");
        let problem = |raw: &[u8]| parse(send, raw).expect("parses").body_problem;
        assert_eq!(
            problem(br#"{"sessionID":"s","body":{"type":"text","from":"operator","origin":"chat","content":"Hi","extra":1}}"#),
            None,
            "a complete body passes, unknown fields included"
        );
        let missing = problem(br#"{"sessionID":"s"}"#).expect("body is required");
        assert!(
            missing.contains("needs `body`") && missing.contains("`type`"),
            "{missing}"
        );
        let field = problem(
            br#"{"sessionID":"s","body":{"type":"text","from":"operator","content":"Hi"}}"#,
        )
        .expect("origin is required");
        assert!(field.starts_with("`body.origin` is missing"), "{field}");
        let wrong = problem(br#"{"sessionID":"s","body":{"type":"txt","from":"operator","origin":"chat","content":"Hi"}}"#)
            .expect("type is an enum");
        assert!(
            wrong.contains("`body.type` must be one of \"text\""),
            "{wrong}"
        );
        // A write that sends no body needs none.
        let dispatch = action("dispatch/campaign");
        assert_eq!(
            parse(dispatch, br#"{"campaignID":"c"}"#)
                .expect("parses")
                .body_problem,
            None
        );
    }
}
