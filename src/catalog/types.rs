//! The catalog's named types (`types.toml`): Crisp's request bodies and results, parsed once.
//!
//! One notation serves every reader: the call path checks a body against its type before
//! Crisp sees it, and the generated documents (OpenAPI, MCP schemas, Postman examples) turn the
//! same types into schemas. A field line is `name: Type — meaning` or `name?: Type — meaning`.

use std::collections::{BTreeMap, HashMap};
use std::fmt;

use serde::Deserialize;
use serde_json::Value;

/// A type named in `types.toml`, by its position in [`Types::all`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct TypeId(u32);

/// A type expression: `string`, `Conversation[]`, `ConversationAssigned|null`, …
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Ty {
    String,
    Integer,
    Number,
    Boolean,
    /// Any JSON object.
    Object,
    Any,
    Null,
    Named(TypeId),
    Array(Box<Ty>),
    /// Any of these (`string|null`).
    Union(Vec<Ty>),
}

impl Ty {
    /// Whether `null` is one of the values the type takes.
    pub fn is_nullable(&self) -> bool {
        match self {
            Self::Null | Self::Any => true,
            Self::Union(members) => members.iter().any(Ty::is_nullable),
            _ => false,
        }
    }
}

#[derive(Debug)]
pub struct Named {
    pub name: &'static str,
    pub about: &'static str,
    pub shape: Shape,
}

#[derive(Debug)]
pub enum Shape {
    /// An object with these known fields; fields the catalog does not know are allowed too.
    Fields(Vec<Field>),
    /// One of these strings.
    Enum(Vec<&'static str>),
    /// An object whose values all have this type.
    Map(Ty),
}

#[derive(Debug)]
pub struct Field {
    pub name: &'static str,
    pub ty: Ty,
    pub required: bool,
    /// One line: what the field means.
    pub about: &'static str,
}

/// Why a value does not fit its type: where (`body.content`), what was expected, what came.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mismatch {
    pub path: String,
    pub expected: String,
    pub found: &'static str,
}

impl fmt::Display for Mismatch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "`{}` must be {}, not {}",
            self.path, self.expected, self.found
        )
    }
}

#[derive(Debug, Default)]
pub struct Types {
    all: Vec<Named>,
    by_name: HashMap<&'static str, TypeId>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawNamed {
    about: String,
    fields: Option<Vec<String>>,
    #[serde(rename = "enum")]
    values: Option<Vec<String>>,
    map: Option<String>,
}

fn leak(s: &str) -> &'static str {
    Box::leak(s.to_owned().into_boxed_str())
}

impl Types {
    /// Parses `types.toml`: every name first, so types may refer to each other in any order.
    pub(super) fn parse(source: &str) -> Result<Self, String> {
        let raw: BTreeMap<String, RawNamed> =
            toml::from_str(source).map_err(|e| format!("types: {e}"))?;
        let mut types = Types::default();
        for (i, name) in raw.keys().enumerate() {
            if !is_type_name(name) {
                return Err(format!(
                    "type `{name}` must be a CamelCase name of letters and digits"
                ));
            }
            types.by_name.insert(
                leak(name),
                TypeId(u32::try_from(i).map_err(|e| e.to_string())?),
            );
        }
        for (name, raw) in &raw {
            let within = |e: String| format!("type `{name}`: {e}");
            let shape = match (&raw.fields, &raw.values, &raw.map) {
                (Some(lines), None, None) => {
                    let mut fields: Vec<Field> = Vec::with_capacity(lines.len());
                    for line in lines {
                        let field = types.field(line).map_err(within)?;
                        if fields.iter().any(|f| f.name == field.name) {
                            return Err(within(format!("field `{}` appears twice", field.name)));
                        }
                        fields.push(field);
                    }
                    Shape::Fields(fields)
                }
                (None, Some(values), None) if !values.is_empty() => {
                    Shape::Enum(values.iter().map(|v| leak(v)).collect())
                }
                (None, None, Some(value)) => Shape::Map(types.expr(value).map_err(within)?),
                _ => {
                    return Err(within(
                        "needs exactly one of `fields`, a non-empty `enum`, or `map`".to_owned(),
                    ));
                }
            };
            if raw.about.trim().is_empty() {
                return Err(within("has no `about`".to_owned()));
            }
            let (name, id) = types
                .by_name
                .get_key_value(name.as_str())
                .map(|(k, v)| (*k, *v))
                .ok_or_else(|| within("lost its name".to_owned()))?;
            debug_assert_eq!(id.0 as usize, types.all.len(), "ids follow the map's order");
            types.all.push(Named {
                name,
                about: leak(raw.about.trim()),
                shape,
            });
        }
        Ok(types)
    }

    pub fn all(&self) -> &[Named] {
        &self.all
    }

    pub fn get(&self, name: &str) -> Option<&Named> {
        self.by_name.get(name).map(|&id| self.named(id))
    }

    pub fn id(&self, name: &str) -> Option<TypeId> {
        self.by_name.get(name).copied()
    }

    pub fn named(&self, id: TypeId) -> &Named {
        &self.all[id.0 as usize]
    }

    /// Parses one type expression against the known names.
    pub fn expr(&self, text: &str) -> Result<Ty, String> {
        let mut parser = Parser {
            text: text.trim(),
            at: 0,
            types: self,
        };
        let ty = parser.union()?;
        if parser.at != parser.text.len() {
            return Err(format!(
                "type `{text}`: unexpected `{}`",
                &parser.text[parser.at..]
            ));
        }
        Ok(ty)
    }

    fn field(&self, line: &str) -> Result<Field, String> {
        let (head, about) = line
            .split_once(" — ")
            .ok_or_else(|| format!("field line `{line}` needs ` — ` and a one-line meaning"))?;
        let (name, ty) = head
            .split_once(':')
            .ok_or_else(|| format!("field line `{line}` needs `name: Type`"))?;
        let (name, required) = match name.trim().strip_suffix('?') {
            Some(name) => (name, false),
            None => (name.trim(), true),
        };
        let valid_name = !name.is_empty()
            && name
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.'));
        if !valid_name || about.trim().is_empty() {
            return Err(format!("field line `{line}` is malformed"));
        }
        Ok(Field {
            name: leak(name),
            ty: self.expr(ty)?,
            required,
            about: leak(about.trim()),
        })
    }

    /// How a type reads in an error message or a description: `string`, `Conversation[]`,
    /// `"text"|"file"` for an enum.
    pub fn describe(&self, ty: &Ty) -> String {
        match ty {
            Ty::String => "string".to_owned(),
            Ty::Integer => "integer".to_owned(),
            Ty::Number => "number".to_owned(),
            Ty::Boolean => "boolean".to_owned(),
            Ty::Object => "object".to_owned(),
            Ty::Any => "any".to_owned(),
            Ty::Null => "null".to_owned(),
            Ty::Named(id) => self.named(*id).name.to_owned(),
            Ty::Array(item) => match **item {
                Ty::Union(_) => format!("({})[]", self.describe(item)),
                _ => format!("{}[]", self.describe(item)),
            },
            Ty::Union(members) => members
                .iter()
                .map(|m| self.describe(m))
                .collect::<Vec<_>>()
                .join("|"),
        }
    }

    /// What a message says the value should have been: the enum's words, an object's name.
    fn expectation(&self, ty: &Ty) -> String {
        match ty {
            Ty::Named(id) => match &self.named(*id).shape {
                Shape::Enum(values) => format!(
                    "one of {}",
                    values
                        .iter()
                        .map(|v| format!("\"{v}\""))
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
                Shape::Fields(_) => format!("an object ({})", self.named(*id).name),
                Shape::Map(value) => {
                    format!("an object of {} values", self.describe(value))
                }
            },
            Ty::Union(members) => members
                .iter()
                .map(|m| self.expectation(m))
                .collect::<Vec<_>>()
                .join(" or "),
            Ty::Array(item) => format!("an array of {}", self.describe(item)),
            Ty::Object => "an object".to_owned(),
            Ty::Integer => "an integer".to_owned(),
            Ty::Number => "a number".to_owned(),
            Ty::Boolean => "true or false".to_owned(),
            other => format!("a {}", self.describe(other)),
        }
    }

    /// Checks a value against a type, naming the first field that does not fit. Fields the
    /// type does not know pass: Crisp adds fields faster than a catalog can list them.
    pub fn check(&self, ty: &Ty, value: &Value, path: &str) -> Result<(), Mismatch> {
        let wrong = || Mismatch {
            path: path.to_owned(),
            expected: self.expectation(ty),
            found: kind(value),
        };
        match ty {
            Ty::Any => Ok(()),
            Ty::String => value.is_string().then_some(()).ok_or_else(wrong),
            Ty::Number => value.is_number().then_some(()).ok_or_else(wrong),
            Ty::Integer => is_integer(value).then_some(()).ok_or_else(wrong),
            Ty::Boolean => value.is_boolean().then_some(()).ok_or_else(wrong),
            Ty::Object => value.is_object().then_some(()).ok_or_else(wrong),
            Ty::Null => value.is_null().then_some(()).ok_or_else(wrong),
            Ty::Array(item) => {
                let items = value.as_array().ok_or_else(wrong)?;
                for (i, v) in items.iter().enumerate() {
                    self.check(item, v, &format!("{path}[{i}]"))?;
                }
                Ok(())
            }
            Ty::Union(members) => {
                if members.iter().any(|m| self.check(m, value, path).is_ok()) {
                    return Ok(());
                }
                // When one member takes this kind of value (an object for a named object
                // type), its own, deeper complaint says more than "one of".
                let takers: Vec<&Ty> = members
                    .iter()
                    .filter(|m| self.takes_kind(m, value))
                    .collect();
                match takers.as_slice() {
                    [only] => self.check(only, value, path),
                    _ => Err(wrong()),
                }
            }
            Ty::Named(id) => match &self.named(*id).shape {
                Shape::Enum(values) => match value.as_str() {
                    Some(word) if values.contains(&word) => Ok(()),
                    _ => Err(wrong()),
                },
                Shape::Map(of) => {
                    let object = value.as_object().ok_or_else(wrong)?;
                    for (key, v) in object {
                        self.check(of, v, &format!("{path}.{key}"))?;
                    }
                    Ok(())
                }
                Shape::Fields(fields) => {
                    let object = value.as_object().ok_or_else(wrong)?;
                    for field in fields {
                        let at = format!("{path}.{}", field.name);
                        match object.get(field.name) {
                            None if field.required => {
                                return Err(Mismatch {
                                    path: at,
                                    expected: self.expectation(&field.ty),
                                    found: "missing",
                                });
                            }
                            None => {}
                            // An optional field sent as null is how Crisp's clients leave it
                            // unset.
                            Some(Value::Null) if !field.required => {}
                            Some(v) => self.check(&field.ty, v, &at)?,
                        }
                    }
                    Ok(())
                }
            },
        }
    }

    /// Whether a type takes values of this JSON kind at all.
    fn takes_kind(&self, ty: &Ty, value: &Value) -> bool {
        match (ty, value) {
            (Ty::Any, _) => true,
            (Ty::String, Value::String(_)) => true,
            (Ty::Number | Ty::Integer, Value::Number(_)) => true,
            (Ty::Boolean, Value::Bool(_)) => true,
            (Ty::Null, Value::Null) => true,
            (Ty::Object, Value::Object(_)) => true,
            (Ty::Array(_), Value::Array(_)) => true,
            (Ty::Union(members), _) => members.iter().any(|m| self.takes_kind(m, value)),
            (Ty::Named(id), _) => match self.named(*id).shape {
                Shape::Enum(_) => value.is_string(),
                Shape::Fields(_) | Shape::Map(_) => value.is_object(),
            },
            _ => false,
        }
    }

    /// Whether a value of this type must carry something: an object with a required field,
    /// or anything that is not an object.
    pub fn requires_value(&self, ty: &Ty) -> bool {
        match ty {
            Ty::Named(id) => match &self.named(*id).shape {
                Shape::Fields(fields) => fields.iter().any(|f| f.required),
                Shape::Enum(_) => true,
                Shape::Map(_) => false,
            },
            Ty::Object | Ty::Any => false,
            other => !other.is_nullable(),
        }
    }
}

fn is_type_name(name: &str) -> bool {
    name.starts_with(|c: char| c.is_ascii_uppercase())
        && name.bytes().all(|b| b.is_ascii_alphanumeric())
}

fn is_integer(value: &Value) -> bool {
    value.is_i64() || value.is_u64() || value.as_f64().is_some_and(|f| f.fract() == 0.0)
}

fn kind(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(n) if n.is_f64() => "a number",
        Value::Number(_) => "an integer",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

/// Reads `union := term ('|' term)*`, `term := base ('[]')*`, `base := word | '(' union ')'`.
struct Parser<'a> {
    text: &'a str,
    at: usize,
    types: &'a Types,
}

impl Parser<'_> {
    fn skip_blanks(&mut self) {
        while self.text[self.at..].starts_with(' ') {
            self.at += 1;
        }
    }

    fn eat(&mut self, token: &str) -> bool {
        self.skip_blanks();
        let found = self.text[self.at..].starts_with(token);
        if found {
            self.at += token.len();
        }
        found
    }

    fn union(&mut self) -> Result<Ty, String> {
        let mut members = vec![self.term()?];
        while self.eat("|") {
            members.push(self.term()?);
        }
        Ok(if members.len() == 1 {
            members.remove(0)
        } else {
            Ty::Union(members)
        })
    }

    fn term(&mut self) -> Result<Ty, String> {
        let mut ty = if self.eat("(") {
            let inner = self.union()?;
            if !self.eat(")") {
                return Err(format!("type `{}`: missing `)`", self.text));
            }
            inner
        } else {
            self.word()?
        };
        while self.eat("[]") {
            ty = Ty::Array(Box::new(ty));
        }
        Ok(ty)
    }

    fn word(&mut self) -> Result<Ty, String> {
        self.skip_blanks();
        let rest = &self.text[self.at..];
        let len = rest
            .bytes()
            .take_while(|b| b.is_ascii_alphanumeric())
            .count();
        let word = &rest[..len];
        self.at += len;
        Ok(match word {
            "string" => Ty::String,
            "integer" => Ty::Integer,
            "number" => Ty::Number,
            "boolean" => Ty::Boolean,
            "object" => Ty::Object,
            "any" => Ty::Any,
            "null" => Ty::Null,
            "" => return Err(format!("type `{}`: a type is missing", self.text)),
            name => Ty::Named(
                self.types
                    .id(name)
                    .ok_or_else(|| format!("type `{name}` is not defined in types.toml"))?,
            ),
        })
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    const SOURCE: &str = r#"
[Message]
about = "A message."
fields = [
  "type: MessageType — What kind of message.",
  "content: string|MessageFile — The text, or the file.",
  "mentions?: string[] — Mentioned operators.",
  "stamp?: integer — When.",
]

[MessageType]
about = "Kinds."
enum = ["text", "file"]

[MessageFile]
about = "A file."
fields = ["url: string — Where it is."]

[Data]
about = "Free data."
map = "string|number|boolean"
"#;

    fn types() -> Types {
        Types::parse(SOURCE).expect("parses")
    }

    #[test]
    fn expressions_read_and_describe_back() {
        let t = types();
        for text in [
            "string",
            "Message[]",
            "MessageFile|null",
            "(string|integer)[]",
            "Data",
        ] {
            let ty = t.expr(text).expect(text);
            assert_eq!(t.describe(&ty), text);
        }
        assert!(
            t.expr("Nope")
                .expect_err("must be refused")
                .contains("not defined")
        );
        assert!(t.expr("string|").is_err());
        assert!(t.expr("string]").is_err());
        assert_eq!(t.get("MessageType").map(|n| n.name), Some("MessageType"));
    }

    #[test]
    fn values_are_checked_field_by_field() {
        let t = types();
        let message = t.expr("Message").expect("type");
        let ok = json!({"type": "text", "content": "Hi", "extra": [1], "stamp": 3.0});
        assert_eq!(t.check(&message, &ok, "body"), Ok(()));
        let file = json!({"type": "file", "content": {"url": "u"}});
        assert_eq!(t.check(&message, &file, "body"), Ok(()));

        let missing = t
            .check(&message, &json!({"type": "text"}), "body")
            .expect_err("must be refused");
        assert_eq!(missing.path, "body.content");
        assert_eq!(missing.found, "missing");
        assert_eq!(missing.expected, "a string or an object (MessageFile)");

        let word = t
            .check(&message, &json!({"type": "txt", "content": "x"}), "body")
            .expect_err("must be refused");
        assert_eq!(
            word.to_string(),
            "`body.type` must be one of \"text\", \"file\", not a string"
        );

        let deep = t
            .check(
                &message,
                &json!({"type": "file", "content": {"url": 7}}),
                "body",
            )
            .expect_err("must be refused");
        assert_eq!(
            (deep.path.as_str(), deep.found),
            ("body.content.url", "an integer")
        );

        let item = t
            .check(
                &message,
                &json!({"type": "text", "content": "x", "mentions": ["a", 1]}),
                "body",
            )
            .expect_err("must be refused");
        assert_eq!(item.path, "body.mentions[1]");
        let nulls = json!({"type": "text", "content": "x", "mentions": null});
        assert_eq!(t.check(&message, &nulls, "body"), Ok(()));

        let data = t.expr("Data").expect("type");
        assert!(t.check(&data, &json!({"a": 1, "b": "x"}), "body").is_ok());
        assert_eq!(
            t.check(&data, &json!({"a": [1]}), "body")
                .expect_err("must be refused")
                .path,
            "body.a"
        );
    }

    #[test]
    fn broken_type_files_are_refused() {
        for (source, needle) in [
            ("[A]\nabout = \"x\"\nfields = [\"a: string\"]", "meaning"),
            ("[A]\nabout = \"x\"\nfields = [\"a: B — m\"]", "not defined"),
            ("[A]\nabout = \"x\"\nenum = []", "exactly one"),
            (
                "[A]\nabout = \"x\"\nenum = [\"a\"]\nmap = \"string\"",
                "exactly one",
            ),
            ("[a]\nabout = \"x\"\nenum = [\"a\"]", "CamelCase"),
            (
                "[A]\nabout = \"x\"\nfields = [\"a: string — m\", \"a?: string — n\"]",
                "twice",
            ),
            ("[A]\nabout = \"x\"\nshape = 1", "unknown field"),
        ] {
            let err = Types::parse(source).expect_err("must be refused");
            assert!(err.contains(needle), "{err} should mention {needle}");
        }
    }

    #[test]
    fn requiredness_follows_the_fields() {
        let t = types();
        assert!(t.requires_value(&t.expr("Message").expect("type")));
        assert!(!t.requires_value(&t.expr("Data").expect("type")));
        assert!(t.requires_value(&t.expr("Message[]").expect("type")));
        assert!(!t.requires_value(&Ty::Object));
    }
}
