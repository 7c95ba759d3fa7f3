//! The `essentials` toolset: the 16 tools of the popular Crisp connector, mapped onto catalog
//! actions, so agent setups written for that connector work unchanged.
//!
//! The mapping is data: each tool names its catalog action and the Crisp body (writes) or query
//! (reads) fields it takes by name; path parameters use the connector's snake_case names
//! (`RENAMES`). A call is translated into the catalog action's own arguments and then runs
//! exactly like `POST /api/crisp/<action>`. The catalog spellings (`sessionID`, `body`,
//! `query`) are accepted too, so a caller mixing both conventions is not refused.

use serde_json::{Map, Value, json};

use crate::catalog::{Action, CATALOG, ParamKind};
use crate::error::{ApiError, Reason};
use crate::kernel::text::did_you_mean;

use super::schema;

/// The connector's path parameter names → the catalog's.
pub const RENAMES: &[(&str, &str)] = &[
    ("website_id", "websiteID"),
    ("session_id", "sessionID"),
    ("message_id", "fingerprint"),
    ("people_id", "peopleID"),
    ("operator_id", "userID"),
    ("page_number", "pageNumber"),
];

/// The JSON type of a named body or query field.
#[derive(Debug, Clone, Copy)]
pub enum Kind {
    Text,
    Integer,
    Boolean,
    Object,
    TextList,
}

/// A Crisp body (write) or query (read) field a connector tool takes by name.
#[derive(Debug)]
pub struct Field {
    pub name: &'static str,
    pub kind: Kind,
    pub required: bool,
    pub description: &'static str,
}

#[derive(Debug)]
pub struct Essential {
    /// The connector's tool name.
    pub name: &'static str,
    /// The catalog action it runs.
    pub slug: &'static str,
    pub description: &'static str,
    pub fields: &'static [Field],
    /// Body fields the gateway fills when the caller leaves them out, as JSON text.
    pub defaults: &'static [(&'static str, &'static str)],
}

const fn field(name: &'static str, kind: Kind, description: &'static str) -> Field {
    Field {
        name,
        kind,
        required: false,
        description,
    }
}

const fn required(name: &'static str, kind: Kind, description: &'static str) -> Field {
    Field {
        name,
        kind,
        required: true,
        description,
    }
}

const fn tool(
    name: &'static str,
    slug: &'static str,
    description: &'static str,
    fields: &'static [Field],
    defaults: &'static [(&'static str, &'static str)],
) -> Essential {
    Essential {
        name,
        slug,
        description,
        fields,
        defaults,
    }
}

use Kind::{Boolean, Integer, Object, Text, TextList};

/// The connector's 16 tools, in its order. Crisp has no "archive" route: archiving is
/// resolving the conversation (`PATCH …/state` with `{"state":"resolved"}`), which is what
/// the Crisp inbox's archive does.
pub const ESSENTIALS: &[Essential] = &[
    tool(
        "crisp_list_conversations",
        "list/conversations",
        "List conversations of the website, most recent first, one page at a time.",
        &[
            field("per_page", Integer, "Conversations per page, 20 to 50."),
            field(
                "search_query",
                Text,
                "Text to search for (with search_type `text`).",
            ),
            field("search_type", Text, "`text`, `segment` or `filter`."),
            field("filter_inbox_id", Text, "Only conversations of this inbox."),
            field("filter_unread", Integer, "1: only unread conversations."),
            field(
                "filter_resolved",
                Integer,
                "1: only resolved conversations.",
            ),
            field(
                "filter_not_resolved",
                Integer,
                "1: only conversations not resolved.",
            ),
            field(
                "filter_assigned",
                Text,
                "Only conversations assigned to this operator (user id).",
            ),
        ],
        &[],
    ),
    tool(
        "crisp_get_conversation",
        "get/conversation",
        "Get one conversation: its state, participants, metas and last message.",
        &[],
        &[],
    ),
    tool(
        "crisp_initiate_conversation",
        "create/new/conversation",
        "Initiate a new conversation; returns its session_id.",
        &[],
        &[],
    ),
    tool(
        "crisp_archive_conversation",
        "change/conversation/state",
        "Archive a conversation by marking it resolved (Crisp's state `resolved`).",
        &[],
        &[("state", "\"resolved\"")],
    ),
    tool(
        "crisp_send_message",
        "send/message/in/conversation",
        "Send a message in a conversation (a text message from the operator by default).",
        &[
            required(
                "content",
                Text,
                "The message: text for `text` and `note` messages.",
            ),
            field(
                "type",
                Text,
                "`text` (default), `note`, `file`, `animation`, `audio`, `picker`, `field`, `carousel`, `event`.",
            ),
            field("from", Text, "`operator` (default) or `user`."),
            field("origin", Text, "`chat` (default), `email`, `urn:…`."),
        ],
        &[
            ("type", "\"text\""),
            ("from", "\"operator\""),
            ("origin", "\"chat\""),
        ],
    ),
    tool(
        "crisp_list_messages",
        "get/messages/in/conversation",
        "List the messages of a conversation, most recent last.",
        &[field(
            "timestamp_before",
            Integer,
            "Only messages older than this timestamp (ms), to page back.",
        )],
        &[],
    ),
    tool(
        "crisp_get_message",
        "get/message/in/conversation",
        "Get one message of a conversation by its fingerprint.",
        &[],
        &[],
    ),
    tool(
        "crisp_get_people_profile",
        "get/people/profile",
        "Get a customer profile (people_id may also be an email address).",
        &[],
        &[],
    ),
    tool(
        "crisp_update_people_profile",
        "update/people/profile",
        "Update a customer profile: only the fields given change.",
        &[
            field("email", Text, "The contact's email."),
            field(
                "person",
                Object,
                "{nickname, avatar, gender, phone, address, description, website, timezone, employment, geolocation, locales}.",
            ),
            field(
                "company",
                Object,
                "{name, legal_name, domain, url, description, …}.",
            ),
            field("segments", TextList, "The profile's segments."),
            field("notepad", Text, "The operators' private notes."),
        ],
        &[],
    ),
    tool(
        "crisp_list_people_profiles",
        "list/people/profiles",
        "List customer profiles, one page at a time.",
        &[
            field("per_page", Integer, "Profiles per page, 20 to 50."),
            field("search_text", Text, "Text to search for."),
            field("sort_field", Text, "The field to sort on."),
            field("sort_order", Text, "`ascending` or `descending`."),
        ],
        &[],
    ),
    tool(
        "crisp_list_operators",
        "list/website/operators",
        "List the website's support operators.",
        &[],
        &[],
    ),
    tool(
        "crisp_get_operator",
        "get/website/operator",
        "Get one operator of the website.",
        &[],
        &[],
    ),
    tool(
        "crisp_invite_operator",
        "invite/website/operator",
        "Invite a new operator to the website by email.",
        &[
            required("email", Text, "The invitee's email."),
            required("role", Text, "`owner` or `member`."),
            field(
                "verify",
                Boolean,
                "Whether the invitation must be verified.",
            ),
        ],
        &[],
    ),
    tool(
        "crisp_delete_operator",
        "unlink/operator/from/website",
        "Remove an operator from the website.",
        &[],
        &[],
    ),
    tool(
        "crisp_get_website_settings",
        "get/website/settings",
        "Get the website's settings.",
        &[],
        &[],
    ),
    tool(
        "crisp_update_website_settings",
        "update/website/settings",
        "Update website settings: only the fields given change.",
        &[
            field("name", Text, "The website name."),
            field("domain", Text, "The website domain."),
            field("logo", Text, "The logo URL."),
            field(
                "contact",
                Object,
                "{email, phone, messenger, telegram, twitter, whatsapp, instagram}.",
            ),
            field(
                "inbox",
                Object,
                "{lock_removal, force_operator_token, locale}.",
            ),
            field("emails", Object, "{rating, transcript, junk_filter}."),
            field(
                "chatbox",
                Object,
                "Chatbox settings, e.g. {color_theme, welcome_message, locale, …}.",
            ),
        ],
        &[],
    ),
];

impl Essential {
    /// The catalog action; the table is checked against the catalog by a test.
    pub fn action(&self) -> Option<&'static Action> {
        CATALOG.get(self.slug)
    }

    pub fn description(&self, action: &Action) -> String {
        let route = action
            .route
            .as_ref()
            .map(|r| format!(" ({} {})", r.method.as_str(), r.path.as_str()))
            .unwrap_or_default();
        format!(
            "{} Runs the gateway action `{}`{route}.",
            self.description, action.slug
        )
    }

    /// The connector-style input schema.
    pub fn input_schema(&self, action: &Action) -> rmcp::model::JsonObject {
        let mut properties = Map::new();
        let mut required_names = Vec::new();
        properties.insert("account".into(), schema::account());
        for param in action.params.iter().filter(|p| p.kind == ParamKind::Path) {
            let name = connector_name(param.name);
            let property = match param.name {
                "websiteID" => schema::website_id(),
                "pageNumber" => schema::page_number(),
                _ => {
                    json!({ "type": "string", "description": format!("The {}.", name.replace('_', " ")) })
                }
            };
            properties.insert(name.to_owned(), property);
            if param.required {
                required_names.push(Value::from(name));
            }
        }
        for field in self.fields {
            let mut property = match field.kind {
                Text => json!({ "type": "string" }),
                Integer => json!({ "type": "integer" }),
                Boolean => json!({ "type": "boolean" }),
                Object => json!({ "type": "object" }),
                TextList => json!({ "type": "array", "items": { "type": "string" } }),
            };
            property["description"] = field.description.into();
            properties.insert(field.name.into(), property);
            if field.required {
                required_names.push(field.name.into());
            }
        }
        if action.write {
            properties.insert(
                "body".into(),
                schema::body(Some(
                    "optional; the named fields above are merged into it and win",
                )),
            );
        } else {
            properties.insert(
                "query".into(),
                schema::query(Some(
                    "optional; the named fields above are merged into it and win",
                )),
            );
        }
        schema::object(properties, required_names)
    }

    /// Turns the connector-style arguments into the catalog action's own arguments.
    pub fn translate(
        &self,
        action: &Action,
        arguments: Map<String, Value>,
    ) -> Result<Map<String, Value>, ApiError> {
        let payload_name = if action.write { "body" } else { "query" };
        let mut out = Map::new();
        let mut named = Map::new();
        let mut payload = None;
        for (name, value) in arguments {
            if value.is_null() {
                continue;
            }
            if let Some(catalog) = catalog_name(&name).filter(|n| action.param(n).is_some()) {
                out.insert(catalog.to_owned(), value);
            } else if self.fields.iter().any(|f| f.name == name) {
                named.insert(name, value);
            } else if name == payload_name {
                payload = Some(value);
            } else if action.param(&name).is_some() {
                out.insert(name, value);
            } else {
                return Err(self.unknown_field(action, &name));
            }
        }
        if let Some(param) = action
            .params
            .iter()
            // The body is built below from the connector's fields, and checked against
            // its type when the call runs.
            .find(|p| p.required && p.kind == ParamKind::Path && !out.contains_key(p.name))
        {
            return Err(ApiError::bad_request(
                Reason::MissingField,
                format!(
                    "`{}` is required by `{}`.",
                    connector_name(param.name),
                    self.name
                ),
            ));
        }
        if let Some(payload) = self.merge(payload_name, payload, named)? {
            out.insert(payload_name.to_owned(), payload);
        }
        Ok(out)
    }

    /// Merges the named fields and the defaults into the caller's `body`/`query` object.
    fn merge(
        &self,
        payload_name: &str,
        payload: Option<Value>,
        named: Map<String, Value>,
    ) -> Result<Option<Value>, ApiError> {
        if named.is_empty() && self.defaults.is_empty() && !self.fields.iter().any(|f| f.required) {
            // Nothing to merge: `call::args` validates whatever form the caller chose.
            return Ok(payload);
        }
        let mut object = match payload {
            None => Map::new(),
            Some(Value::Object(map)) => map,
            Some(Value::String(text)) if text.trim().is_empty() => Map::new(),
            Some(Value::String(text)) => match serde_json::from_str::<Value>(&text) {
                Ok(Value::Object(map)) => map,
                _ => {
                    return Err(ApiError::bad_request(
                        Reason::InvalidField,
                        format!(
                            "`{payload_name}` must hold a JSON object when given together with `{}`'s named fields.",
                            self.name
                        ),
                    ));
                }
            },
            Some(_) => {
                return Err(ApiError::bad_request(
                    Reason::InvalidField,
                    format!("`{payload_name}` of `{}` must be a JSON object.", self.name),
                ));
            }
        };
        object.extend(named);
        for (name, default) in self.defaults {
            if !object.contains_key(*name) {
                let value = serde_json::from_str(default)
                    .map_err(|e| ApiError::Internal(format!("bad default for {name}: {e}")))?;
                object.insert((*name).to_owned(), value);
            }
        }
        if let Some(missing) = self
            .fields
            .iter()
            .find(|f| f.required && !object.contains_key(f.name))
        {
            return Err(ApiError::bad_request(
                Reason::MissingField,
                format!("`{}` is required by `{}`.", missing.name, self.name),
            ));
        }
        Ok(Some(Value::Object(object)))
    }

    fn unknown_field(&self, action: &Action, name: &str) -> ApiError {
        let mut names: Vec<&str> = vec!["account"];
        names.extend(
            action
                .params
                .iter()
                .filter(|p| p.kind == ParamKind::Path)
                .map(|p| connector_name(p.name)),
        );
        names.extend(self.fields.iter().map(|f| f.name));
        names.push(if action.write { "body" } else { "query" });
        let hint = did_you_mean(name, names.iter().copied())
            .map(|m| format!(" Did you mean `{m}`?"))
            .unwrap_or_default();
        ApiError::bad_request(
            Reason::UnknownField,
            format!(
                "`{name}` is not a field of `{}`.{hint} Its fields are: {}.",
                self.name,
                names.join(", ")
            ),
        )
    }
}

fn catalog_name(connector: &str) -> Option<&'static str> {
    RENAMES
        .iter()
        .find(|(c, _)| *c == connector)
        .map(|(_, catalog)| *catalog)
}

fn connector_name(catalog: &str) -> &str {
    RENAMES
        .iter()
        .find(|(_, c)| *c == catalog)
        .map_or(catalog, |(connector, _)| connector)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn object(value: Value) -> Map<String, Value> {
        match value {
            Value::Object(map) => map,
            other => panic!("not an object: {other}"),
        }
    }

    fn essential(name: &str) -> &'static Essential {
        ESSENTIALS
            .iter()
            .find(|e| e.name == name)
            .expect("essential")
    }

    #[test]
    fn every_tool_maps_onto_a_catalog_action_with_connector_names() {
        assert_eq!(ESSENTIALS.len(), 16);
        for e in ESSENTIALS {
            let action = e
                .action()
                .unwrap_or_else(|| panic!("{} → {}", e.name, e.slug));
            let schema = Value::Object(e.input_schema(action));
            for name in schema["properties"].as_object().expect("props").keys() {
                assert!(
                    !name.contains(char::is_uppercase),
                    "{}: `{name}` is not a connector name",
                    e.name
                );
            }
            for (name, default) in e.defaults {
                assert!(
                    serde_json::from_str::<Value>(default).is_ok(),
                    "{}: {name}",
                    e.name
                );
            }
        }
    }

    #[test]
    fn send_message_translates_with_defaults() {
        let e = essential("crisp_send_message");
        let action = e.action().expect("action");
        let args = object(json!({"website_id": "w", "session_id": "s", "content": "Hi"}));
        let out = e.translate(action, args).expect("translates");
        assert_eq!(
            Value::Object(out),
            json!({"websiteID": "w", "sessionID": "s", "body": {"content": "Hi", "type": "text", "from": "operator", "origin": "chat"}})
        );
    }

    #[test]
    fn mistakes_use_connector_names() {
        let e = essential("crisp_get_message");
        let action = e.action().expect("action");
        let args = object(json!({"session_id": "s"}));
        let err = e.translate(action, args).expect_err("missing");
        assert!(err.message().contains("`message_id`"), "{}", err.message());
        let args = object(json!({"session_id": "s", "mesage_id": "m"}));
        let err = e.translate(action, args).expect_err("typo");
        assert_eq!(err.reason(), "unknown_field");
        assert!(err.message().contains("`message_id`"), "{}", err.message());
    }
}
