//! What a sandbox handler answers: Crisp's envelope, and the validation messages Crisp's
//! JSON-schema validator writes (`data should have required property 'origin'`).

use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::{Map, Value, json};

use crate::catalog::{CATALOG, Shape, Ty};

/// One answer in Crisp's envelope `{"error","reason","data"}`.
#[derive(Debug, Clone, PartialEq)]
pub struct Answer {
    pub status: StatusCode,
    pub reason: &'static str,
    pub data: Value,
}

impl Answer {
    pub fn ok(reason: &'static str, data: Value) -> Self {
        Self {
            status: StatusCode::OK,
            reason,
            data,
        }
    }

    pub fn error(status: StatusCode, reason: &'static str, message: impl Into<String>) -> Self {
        Self {
            status,
            reason,
            data: json!({ "message": message.into() }),
        }
    }

    pub fn invalid(message: impl Into<String>) -> Self {
        Self::error(StatusCode::BAD_REQUEST, "invalid_data", message)
    }

    pub fn not_found(what: &str) -> Self {
        Self::error(
            StatusCode::NOT_FOUND,
            "not_found",
            format!("{what} not found"),
        )
    }

    pub fn no_route() -> Self {
        Self::error(
            StatusCode::NOT_FOUND,
            "not_found",
            "the route does not exist",
        )
    }

    pub fn is_error(&self) -> bool {
        !self.status.is_success()
    }
}

impl IntoResponse for Answer {
    fn into_response(self) -> Response {
        let body = json!({ "error": self.is_error(), "reason": self.reason, "data": self.data });
        (
            self.status,
            [(header::CONTENT_TYPE, "application/json; charset=utf-8")],
            body.to_string(),
        )
            .into_response()
    }
}

/// Handlers return early with the first validation failure, as Crisp does.
pub type Checked<T> = Result<T, Answer>;

/// The body as an object; Crisp refuses anything else.
pub fn object(body: &Value) -> Checked<&Map<String, Value>> {
    body.as_object()
        .ok_or_else(|| Answer::invalid("data should be object"))
}

pub fn required<'a>(body: &'a Map<String, Value>, field: &str) -> Checked<&'a Value> {
    body.get(field)
        .filter(|v| !v.is_null())
        .ok_or_else(|| Answer::invalid(format!("data should have required property '{field}'")))
}

pub fn string<'a>(value: &'a Value, path: &str) -> Checked<&'a str> {
    value
        .as_str()
        .ok_or_else(|| Answer::invalid(format!("data.{path} should be string")))
}

pub fn required_str<'a>(body: &'a Map<String, Value>, field: &str) -> Checked<&'a str> {
    string(required(body, field)?, field)
}

pub fn one_of<'a>(body: &'a Map<String, Value>, field: &str, allowed: &[&str]) -> Checked<&'a str> {
    let value = required_str(body, field)?;
    if allowed.contains(&value) {
        Ok(value)
    } else {
        Err(Answer::invalid(format!(
            "data.{field} should be equal to one of the allowed values"
        )))
    }
}

/// Refuses fields the schema does not know, as Crisp's validator does.
pub fn only(body: &Map<String, Value>, allowed: &[&str]) -> Checked<()> {
    match body.keys().find(|k| !allowed.contains(&k.as_str())) {
        Some(_) => Err(Answer::invalid(
            "data should NOT have additional properties",
        )),
        None => Ok(()),
    }
}

/// Checks that an optional field, when present, has the JSON type the schema wants.
pub fn typed(body: &Map<String, Value>, field: &str, kind: Kind) -> Checked<()> {
    match body.get(field) {
        None => Ok(()),
        Some(value) if kind.accepts(value) => Ok(()),
        Some(_) => Err(Answer::invalid(format!(
            "data.{field} should be {}",
            kind.name()
        ))),
    }
}

#[derive(Debug, Clone, Copy)]
pub enum Kind {
    String,
    Object,
    Array,
    Boolean,
}

impl Kind {
    fn accepts(self, value: &Value) -> bool {
        match self {
            Self::String => value.is_string(),
            Self::Object => value.is_object(),
            Self::Array => value.is_array(),
            Self::Boolean => value.is_boolean(),
        }
    }

    fn name(self) -> &'static str {
        match self {
            Self::String => "string",
            Self::Object => "object",
            Self::Array => "array",
            Self::Boolean => "boolean",
        }
    }
}

/// A loose e-mail check, enough to refuse what Crisp's `format: email` refuses most often.
pub fn email(value: &str, path: &str) -> Checked<()> {
    let ok = value
        .split_once('@')
        .is_some_and(|(user, host)| !user.is_empty() && host.contains('.') && !host.ends_with('.'));
    if ok {
        Ok(())
    } else {
        Err(Answer::invalid(format!(
            "data.{path} should match format \"email\""
        )))
    }
}

/// Merges `patch` into `target` one level deep: objects are merged key by key, anything else
/// replaces what was there (how Crisp's PATCH routes treat nested cards).
pub fn merge(target: &mut Map<String, Value>, patch: &Map<String, Value>) {
    for (key, value) in patch {
        match (target.get_mut(key), value) {
            (Some(Value::Object(old)), Value::Object(new)) => {
                for (k, v) in new {
                    old.insert(k.clone(), v.clone());
                }
            }
            _ => {
                target.insert(key.clone(), value.clone());
            }
        }
    }
}

/// The least value of a catalog type: an object with only its required fields, an empty array
/// or map, the first word of an enum, a zero or an empty string. What the sandbox answers for a
/// route it keeps no state for, so that clients generated from the typed results can parse it.
pub fn least(ty: &Ty) -> Value {
    match ty {
        Ty::String => json!(""),
        Ty::Integer | Ty::Number => json!(0),
        Ty::Boolean => json!(false),
        Ty::Object | Ty::Any => json!({}),
        Ty::Null => Value::Null,
        Ty::Array(_) => json!([]),
        // The first member: `Name|null` answers a `Name`, which every reader of it can parse.
        Ty::Union(members) => members.first().map_or(Value::Null, least),
        Ty::Named(id) => match &CATALOG.types().named(*id).shape {
            Shape::Enum(words) => words.first().map_or(Value::Null, |w| json!(w)),
            Shape::Map(_) => json!({}),
            Shape::Fields(fields) => Value::Object(
                fields
                    .iter()
                    .filter(|f| f.required)
                    .map(|f| (f.name.to_owned(), least(&f.ty)))
                    .collect(),
            ),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_least_value_of_every_result_type_fits_it() {
        let types = CATALOG.types();
        for action in CATALOG.actions() {
            if let Some(result) = &action.result {
                let value = least(result);
                assert!(
                    types.check(result, &value, "data").is_ok(),
                    "{}: {value} does not fit {}",
                    action.slug,
                    types.describe(result)
                );
            }
        }
    }
}
