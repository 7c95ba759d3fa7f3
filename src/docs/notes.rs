//! Reads the body fields out of a catalog note (`{sessions[], assigned:{user_id}|null, silent?}`).
//!
//! The catalog's notes come from the Crisp API reference in a compact notation; the generated
//! documents turn them into schemas and examples, so the fields are written down only once.
//! The parser is forgiving: a note it cannot read yields no fields, never an error, because the
//! note is still shown as text.

/// The value a body field holds, as far as the note says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Shape {
    /// The note names the field but not its type.
    Any,
    Bool,
    String,
    /// One of these strings (`state: pending|unresolved|resolved`, `method:"link"`).
    Enum(Vec<String>),
    /// An object with these known fields (more may be allowed).
    Object(Vec<Field>),
    /// A list, of objects with these fields when the note says so.
    Array(Option<Vec<Field>>),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Field {
    pub name: String,
    /// Marked `?` in the note.
    pub optional: bool,
    /// `|null` in the note.
    pub nullable: bool,
    pub shape: Shape,
    /// `(default "audio")` in the note.
    pub default: Option<String>,
}

/// The fields of the first `{…}` group of a note, or `None` when it has none that can be read.
pub fn body_fields(note: &str) -> Option<Vec<Field>> {
    let start = note.find('{')?;
    let (inner, _) = group(&note[start..], '{', '}')?;
    let fields = object_fields(inner);
    (!fields.is_empty()).then_some(fields)
}

/// Splits `open … close` off the front of `text`; returns the inside and the rest.
fn group(text: &str, open: char, close: char) -> Option<(&str, &str)> {
    let mut depth = 0usize;
    for (i, c) in text.char_indices() {
        if c == open {
            depth += 1;
        } else if c == close {
            depth = depth.checked_sub(1)?;
            if depth == 0 {
                return Some((&text[open.len_utf8()..i], &text[i + close.len_utf8()..]));
            }
        }
    }
    None
}

/// Splits on the commas (or `|`s) that are not inside brackets, braces or quotes.
fn split_top(text: &str, separator: char) -> Vec<&str> {
    let mut parts = Vec::new();
    let (mut depth, mut quoted, mut from) = (0i32, false, 0usize);
    for (i, c) in text.char_indices() {
        match c {
            '"' => quoted = !quoted,
            '{' | '[' | '(' if !quoted => depth += 1,
            '}' | ']' | ')' if !quoted => depth -= 1,
            c if c == separator && depth == 0 && !quoted => {
                parts.push(&text[from..i]);
                from = i + c.len_utf8();
            }
            _ => {}
        }
    }
    parts.push(&text[from..]);
    parts
}

fn object_fields(inner: &str) -> Vec<Field> {
    split_top(inner, ',')
        .into_iter()
        .filter_map(|part| field(part.trim()))
        .collect()
}

fn field(text: &str) -> Option<Field> {
    let name_len = text
        .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
        .unwrap_or(text.len());
    if name_len == 0 {
        // `…`, `...` or something the notation does not cover.
        return None;
    }
    let mut field = Field {
        name: text[..name_len].to_owned(),
        optional: false,
        nullable: false,
        shape: Shape::Any,
        default: None,
    };
    let mut rest = text[name_len..].trim_start();
    loop {
        if let Some(after) = rest.strip_prefix('?') {
            field.optional = true;
            rest = after.trim_start();
        } else if rest.starts_with('[') {
            let (inner, after) = group(rest, '[', ']')?;
            let inner = inner.trim();
            field.shape = Shape::Array(
                inner
                    .starts_with('{')
                    .then(|| group(inner, '{', '}').map(|(fields, _)| object_fields(fields)))
                    .flatten(),
            );
            rest = after.trim_start();
        } else if rest.starts_with('{') {
            let (inner, after) = group(rest, '{', '}')?;
            field.shape = Shape::Object(object_fields(inner));
            rest = after.trim_start();
        } else if let Some(value) = rest.strip_prefix(':') {
            value_spec(&mut field, value.trim());
            break;
        } else if let Some(open) = rest.strip_prefix('(') {
            field.default = open
                .strip_prefix("default")
                .map(|d| d.trim().trim_end_matches(')').trim().trim_matches('"'))
                .filter(|d| !d.is_empty())
                .map(str::to_owned);
            break;
        } else {
            break;
        }
    }
    Some(field)
}

/// `bool`, `string|null`, `{user_id}|null`, `"link"`, `pending|unresolved|resolved`.
fn value_spec(field: &mut Field, value: &str) {
    let mut choices = Vec::new();
    for choice in split_top(value, '|') {
        let choice = choice.trim();
        match choice {
            "null" => field.nullable = true,
            "bool" | "boolean" => field.shape = Shape::Bool,
            "string" => field.shape = Shape::String,
            c if c.starts_with('{') => {
                if let Some((inner, _)) = group(c, '{', '}') {
                    field.shape = Shape::Object(object_fields(inner));
                }
            }
            c => {
                let word = c.trim_matches('"');
                if !word.is_empty()
                    && word
                        .bytes()
                        .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
                {
                    choices.push(word.to_owned());
                }
            }
        }
    }
    if !choices.is_empty() && field.shape == Shape::Any {
        field.shape = Shape::Enum(choices);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(fields: &[Field]) -> Vec<(&str, bool)> {
        fields
            .iter()
            .map(|f| (f.name.as_str(), f.optional))
            .collect()
    }

    #[test]
    fn reads_the_notations_of_the_catalog() {
        let fields = body_fields("DELETE with body {user?, origin?}").expect("fields");
        assert_eq!(names(&fields), [("user", true), ("origin", true)]);

        let fields = body_fields("{sessions[], assigned:{user_id}|null}").expect("fields");
        assert_eq!(fields[0].shape, Shape::Array(None));
        assert!(fields[1].nullable);
        assert!(matches!(&fields[1].shape, Shape::Object(f) if f[0].name == "user_id"));

        let fields =
            body_fields("{state: pending|unresolved|resolved, user?, origin?}").expect("fields");
        assert_eq!(
            fields[0].shape,
            Shape::Enum(vec![
                "pending".into(),
                "unresolved".into(),
                "resolved".into()
            ])
        );

        let fields =
            body_fields("{url, mapping[{column,field}], options{column_separator,skip_header}}")
                .expect("fields");
        assert!(matches!(&fields[1].shape, Shape::Array(Some(f)) if f.len() == 2));
        assert!(matches!(&fields[2].shape, Shape::Object(f) if f.len() == 2));

        let fields = body_fields("{mode (default \"audio\"), user?, origin?}").expect("fields");
        assert_eq!(fields[0].default.as_deref(), Some("audio"));

        let fields = body_fields("{identity, method:\"link\", recipient}").expect("fields");
        assert_eq!(fields[1].shape, Shape::Enum(vec!["link".into()]));

        let fields = body_fields("{email: bool}").expect("fields");
        assert_eq!(fields[0].shape, Shape::Bool);

        let fields = body_fields("{inbox_id: string|null}").expect("fields");
        assert_eq!(
            (&fields[0].shape, fields[0].nullable),
            (&Shape::String, true)
        );

        let fields = body_fields("{nickname?,data{}?,segments[]?}").expect("fields");
        assert_eq!(
            names(&fields),
            [("nickname", true), ("data", true), ("segments", true)]
        );

        let fields = body_fields("{type, from, origin, content, …}").expect("fields");
        assert_eq!(fields.len(), 4);
        let fields = body_fields("{data:{…}} (overwrite)").expect("fields");
        assert_eq!(fields[0].shape, Shape::Object(Vec::new()));
    }

    #[test]
    fn notes_without_fields_give_none() {
        for note in [
            "no body needed (an empty object is sent)",
            "campaign object (full overwrite)",
            "{…}",
            "{broken",
        ] {
            assert_eq!(body_fields(note), None, "{note}");
        }
    }
}
