//! JSON Schema of the catalog's types, written once for every document that shows them.
//!
//! The OpenAPI document refers to named types as `#/components/schemas/<Name>`; an MCP tool's
//! `outputSchema` must stand alone, so it refers to `#/$defs/<Name>` and carries, in `$defs`,
//! exactly the named types it reaches.

use std::collections::BTreeMap;

use serde_json::{Map, Value, json};

use crate::catalog::{Named, Shape, Ty, Types};

/// Where the schema of a named type is found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refs {
    /// `#/components/schemas/<Name>` (OpenAPI).
    Components,
    /// `#/$defs/<Name>` (a self-contained JSON Schema).
    Defs,
}

impl Refs {
    fn to(self, name: &str) -> String {
        match self {
            Self::Components => format!("#/components/schemas/{name}"),
            Self::Defs => format!("#/$defs/{name}"),
        }
    }
}

/// The OpenAPI component that `object` (any JSON object) refers to.
pub const JSON_OBJECT: &str = "JsonObject";

/// The `JsonObject` component.
pub fn json_object() -> Value {
    json!({
        "type": "object",
        "additionalProperties": {},
        "description": "Any JSON object.",
    })
}

/// The schema of a type expression; named types are references.
pub fn ty(types: &Types, ty: &Ty, refs: Refs) -> Value {
    match ty {
        Ty::String => json!({ "type": "string" }),
        Ty::Integer => json!({ "type": "integer" }),
        Ty::Number => json!({ "type": "number" }),
        Ty::Boolean => json!({ "type": "boolean" }),
        Ty::Object => match refs {
            // A shared component: a bare `{"type":"object"}` is `Record<string, never>` to
            // openapi-typescript, and an object in a union gets a `…Type0` class from
            // openapi-python-client; `JsonObject` is `{[key: string]: unknown}` and `JsonObject`.
            Refs::Components => json!({ "$ref": refs.to(JSON_OBJECT) }),
            Refs::Defs => json!({ "type": "object" }),
        },
        Ty::Null => json!({ "type": "null" }),
        Ty::Any => json!({}),
        Ty::Named(id) => json!({ "$ref": refs.to(types.named(*id).name) }),
        Ty::Array(items) => json!({ "type": "array", "items": self::ty(types, items, refs) }),
        Ty::Union(members) => union(types, members, refs),
    }
}

/// `string|null` is `{"type":["string","null"]}`: generators read a type list as one nullable
/// type. A union with a named type or an array needs `anyOf` (`Name|null` becomes
/// `Name | null` in TypeScript and `Name | None` in Python, with no invented names).
fn union(types: &Types, members: &[Ty], refs: Refs) -> Value {
    let simple: Option<Vec<&str>> = members.iter().map(simple_type).collect();
    match simple {
        Some(names) => json!({ "type": names }),
        None => json!({
            "anyOf": members.iter().map(|m| ty(types, m, refs)).collect::<Vec<_>>(),
        }),
    }
}

/// The JSON Schema `type` name of a type expression that is nothing more than one.
fn simple_type(ty: &Ty) -> Option<&'static str> {
    Some(match ty {
        Ty::String => "string",
        Ty::Integer => "integer",
        Ty::Number => "number",
        Ty::Boolean => "boolean",
        Ty::Null => "null",
        _ => return None,
    })
}

/// `schema` with a description. Beside a `$ref` this is allowed since OpenAPI 3.1 and JSON
/// Schema 2019-09, and generators show it on the property.
pub fn described(mut schema: Value, description: &str) -> Value {
    if !description.is_empty()
        && let Value::Object(map) = &mut schema
    {
        map.insert("description".into(), description.into());
    }
    schema
}

/// `ty|null`, one union deep.
fn or_null(ty: &Ty) -> Ty {
    let mut members = match ty {
        Ty::Union(members) => members.clone(),
        other => vec![other.clone()],
    };
    members.push(Ty::Null);
    Ty::Union(members)
}

/// The schema a named type is defined by (a component, or an entry of `$defs`).
pub fn named(types: &Types, named: &Named, refs: Refs) -> Value {
    let schema = match &named.shape {
        Shape::Fields(fields) => {
            let properties: Map<String, Value> = fields
                .iter()
                .map(|f| {
                    // The catalog reads an optional field sent as `null` as left unset (that
                    // is how Crisp and its clients write it), so the schema lets it be null.
                    let schema = if f.required || f.ty.is_nullable() {
                        ty(types, &f.ty, refs)
                    } else {
                        ty(types, &or_null(&f.ty), refs)
                    };
                    (f.name.to_owned(), described(schema, f.about))
                })
                .collect();
            let required: Vec<&str> = fields
                .iter()
                .filter(|f| f.required)
                .map(|f| f.name)
                .collect();
            let mut object = json!({ "type": "object", "properties": properties });
            if !required.is_empty() {
                object["required"] = json!(required);
            }
            object
        }
        Shape::Enum(values) => json!({ "type": "string", "enum": values }),
        Shape::Map(values) => json!({
            "type": "object",
            "additionalProperties": ty(types, values, refs),
        }),
    };
    described(schema, named.about)
}

/// Every named type `root` reaches, directly or through other named types, by name.
pub fn reached<'t>(types: &'t Types, root: &Ty) -> BTreeMap<&'static str, &'t Named> {
    let mut found = BTreeMap::new();
    let mut pending = vec![root];
    while let Some(ty) = pending.pop() {
        match ty {
            Ty::Named(id) => {
                let named = types.named(*id);
                if found.insert(named.name, named).is_none() {
                    match &named.shape {
                        Shape::Fields(fields) => pending.extend(fields.iter().map(|f| &f.ty)),
                        Shape::Map(values) => pending.push(values),
                        Shape::Enum(_) => {}
                    }
                }
            }
            Ty::Array(items) => pending.push(items),
            Ty::Union(members) => pending.extend(members.iter()),
            _ => {}
        }
    }
    found
}

/// A self-contained schema whose `$defs` hold the named types `reach` reaches; `root` is the
/// schema itself, written with [`Refs::Defs`].
pub fn self_contained(
    types: &Types,
    mut root: Map<String, Value>,
    reach: &Ty,
) -> Map<String, Value> {
    let defs: Map<String, Value> = reached(types, reach)
        .into_values()
        .map(|n| (n.name.to_owned(), named(types, n, Refs::Defs)))
        .collect();
    if !defs.is_empty() {
        root.insert("$defs".into(), Value::Object(defs));
    }
    root
}

/// A value of the type that a strict reader accepts: the required fields only, an enum's first
/// value, an empty list or map. For examples, and for contract stubs.
pub fn example(types: &Types, ty: &Ty) -> Value {
    example_at(types, ty, 0)
}

fn example_at(types: &Types, ty: &Ty, depth: usize) -> Value {
    // Types may refer to themselves (a tree node's children); stop well before that matters.
    if depth > 8 {
        return Value::Null;
    }
    match ty {
        Ty::String => json!("example"),
        Ty::Integer | Ty::Number => json!(0),
        Ty::Boolean => json!(false),
        Ty::Object => json!({}),
        Ty::Null | Ty::Any => Value::Null,
        Ty::Array(_) => json!([]),
        // The first member that is not null, as a caller would rather see a value.
        Ty::Union(members) => members
            .iter()
            .find(|m| !matches!(m, Ty::Null))
            .or(members.first())
            .map_or(Value::Null, |m| example_at(types, m, depth + 1)),
        Ty::Named(id) => match &types.named(*id).shape {
            Shape::Fields(fields) => Value::Object(
                fields
                    .iter()
                    .filter(|f| f.required)
                    .map(|f| (f.name.to_owned(), example_at(types, &f.ty, depth + 1)))
                    .collect(),
            ),
            Shape::Enum(values) => values.first().map_or(Value::Null, |v| json!(v)),
            Shape::Map(_) => json!({}),
        },
    }
}
