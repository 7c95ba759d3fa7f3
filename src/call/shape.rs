//! Results sized for agents: keeping only the fields asked for, and cutting a long list at an
//! item boundary with a note of what was left out.
//!
//! Both work on a result the caller asked to be reshaped, so the parse they need is paid only
//! by those calls; a plain call still passes Crisp's bytes through untouched.

use serde_json::{Map, Value};

/// Dotted paths to keep (`session_id`, `meta.email`, `meta.data.plan`), parsed once per call.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fields(Vec<Vec<String>>);

impl Fields {
    /// Reads `"session_id,meta.email"` or `["session_id", "meta.email"]`.
    pub fn parse(value: &Value) -> Result<Self, String> {
        let items: Vec<String> = match value {
            Value::String(text) => text.split(',').map(|s| s.trim().to_owned()).collect(),
            Value::Array(items) => items
                .iter()
                .map(|item| {
                    item.as_str()
                        .map(|s| s.trim().to_owned())
                        .ok_or_else(|| "each of `fields` must be a string".to_owned())
                })
                .collect::<Result<_, _>>()?,
            _ => {
                return Err(
                    "`fields` must be a list of dotted paths, such as [\"session_id\", \"meta.email\"], or one string of them joined by commas"
                        .to_owned(),
                );
            }
        };
        let mut paths = Vec::with_capacity(items.len());
        for item in items {
            let path: Vec<String> = item.split('.').map(str::to_owned).collect();
            if item.is_empty() || path.iter().any(String::is_empty) {
                return Err(format!(
                    "`{item}` in `fields` is not a dotted path such as `meta.email`"
                ));
            }
            paths.push(path);
        }
        if paths.is_empty() {
            return Err("`fields` names no path".to_owned());
        }
        Ok(Self(paths))
    }

    /// Keeps only the listed paths: of each item when the result is a list, else of the result.
    pub fn project(&self, result: Value) -> Value {
        match result {
            Value::Array(items) => {
                Value::Array(items.into_iter().map(|item| self.keep(item)).collect())
            }
            other => self.keep(other),
        }
    }

    fn keep(&self, value: Value) -> Value {
        let Value::Object(object) = value else {
            return value;
        };
        let mut out = Map::new();
        for path in &self.0 {
            copy(&object, path, &mut out);
        }
        Value::Object(out)
    }
}

fn copy(from: &Map<String, Value>, path: &[String], into: &mut Map<String, Value>) {
    let Some((first, rest)) = path.split_first() else {
        return;
    };
    let Some(value) = from.get(first) else {
        return;
    };
    if rest.is_empty() {
        into.insert(first.clone(), value.clone());
        return;
    }
    match value {
        Value::Object(inner) => {
            let slot = into
                .entry(first.clone())
                .or_insert_with(|| Value::Object(Map::new()));
            if let Value::Object(slot) = slot {
                copy(inner, rest, slot);
            }
        }
        // A path through a list applies to each of its objects.
        Value::Array(items) => {
            let kept: Vec<Value> = items
                .iter()
                .map(|item| match item {
                    Value::Object(inner) => {
                        let mut out = Map::new();
                        copy(inner, rest, &mut out);
                        Value::Object(out)
                    }
                    other => other.clone(),
                })
                .collect();
            into.insert(first.clone(), Value::Array(kept));
        }
        _ => {}
    }
}

/// What a cut left out.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cut {
    pub kept: usize,
    pub total: usize,
    pub bytes: usize,
}

/// Cuts a list result to the items that fit in `limit` bytes of JSON (at least one, so the
/// caller sees the shape). Anything but a list, or a list that fits, stays whole.
pub fn cut_to(result: &mut Value, limit: usize) -> Option<Cut> {
    let bytes = serde_json::to_vec(result).map(|v| v.len()).unwrap_or(0);
    if bytes <= limit {
        return None;
    }
    let Value::Array(items) = result else {
        return None;
    };
    let total = items.len();
    let mut used = 2;
    let mut kept = 0;
    for item in items.iter() {
        let size = serde_json::to_vec(item).map(|v| v.len()).unwrap_or(0) + 1;
        if kept > 0 && used + size > limit {
            break;
        }
        used += size;
        kept += 1;
    }
    items.truncate(kept);
    Some(Cut { kept, total, bytes })
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn fields_keep_dotted_paths_of_each_item() {
        let fields = Fields::parse(&json!("session_id, meta.email")).expect("parses");
        let result = json!([
            {"session_id": "s1", "state": "pending", "meta": {"email": "a@x.io", "nickname": "A"}},
            {"session_id": "s2", "meta": {"nickname": "B"}},
            "odd",
        ]);
        assert_eq!(
            fields.project(result),
            json!([
                {"session_id": "s1", "meta": {"email": "a@x.io"}},
                {"session_id": "s2", "meta": {}},
                "odd",
            ])
        );
        let through_list = Fields::parse(&json!(["participants.target"])).expect("parses");
        assert_eq!(
            through_list
                .project(json!({"participants": [{"type": "email", "target": "t"}], "x": 1})),
            json!({"participants": [{"target": "t"}]})
        );
    }

    #[test]
    fn bad_fields_are_explained() {
        for bad in [json!(""), json!("a..b"), json!([1]), json!(3), json!([])] {
            assert!(Fields::parse(&bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn long_lists_are_cut_at_an_item() {
        let mut list = json!(
            (0..100)
                .map(|i| json!({"n": i, "pad": "x".repeat(50)}))
                .collect::<Vec<_>>()
        );
        let cut = cut_to(&mut list, 1000).expect("cut");
        assert_eq!(cut.total, 100);
        assert!(cut.kept >= 1 && cut.kept < 100);
        assert_eq!(list.as_array().map(Vec::len), Some(cut.kept));
        assert!(serde_json::to_vec(&list).expect("json").len() <= 1000);
        let mut small = json!([1, 2]);
        assert_eq!(cut_to(&mut small, 1000), None);
        let mut one_big = json!([{"pad": "x".repeat(2000)}]);
        assert_eq!(
            cut_to(&mut one_big, 1000).map(|c| c.kept),
            Some(1),
            "always one item"
        );
    }
}
