//! Example values built from the catalog's types: one deterministic example per type, so every
//! document (the Postman collection, OpenAPI examples) shows a body the gateway accepts.
//!
//! Required fields always appear; optional ones where they make the example clearer (an object
//! with no required field shows a few of its plain fields, and a short list below names the
//! optional fields Crisp wants in practice). Enums take their first value. A field's name
//! suggests its value (`email` → `ada@example.com`), and id fields (`session_id`, `sessions`,
//! `operators`) ask the caller for an id, so the Postman collection can put its variables there.

use serde_json::{Map, Value, json};

use crate::catalog::{Action, CATALOG, ParamKind, Shape, Ty, Types};

/// How deep nested objects are expanded; the catalog's types are shallow, this only stops a
/// type that contains itself.
const MAX_DEPTH: usize = 6;

/// How many optional fields an object without required fields shows.
const OPTIONAL_SHOWN: usize = 4;

/// Optional fields that Crisp wants in practice, or without which the example says little:
/// a new profile without a nickname is refused by Crisp, a routing update without `assigned`
/// changes nothing.
const CLEARER: &[(&str, &[&str])] = &[
    ("PeopleProfileNew", &["person"]),
    ("PeoplePerson", &["nickname"]),
    ("OperatorEmail", &["user_id"]),
    ("TranscriptRequest", &["email"]),
];

/// Id fields and list-of-id fields, by field name, with the path parameter naming the same id.
const ID_FIELDS: &[(&str, &str)] = &[
    ("session_id", "sessionID"),
    ("sessions", "sessionID"),
    ("people_id", "peopleID"),
    ("profiles", "peopleID"),
    ("user_id", "userID"),
    ("operators", "userID"),
    ("mentions", "userID"),
    ("team_operators", "userID"),
    ("inbox_id", "inboxID"),
    ("team_id", "teamID"),
    ("teams", "teamID"),
    ("campaign_id", "campaignID"),
    ("template_id", "templateID"),
    ("plugin_id", "pluginID"),
    ("website_id", "websiteID"),
    ("fingerprint", "fingerprint"),
    ("fingerprints", "fingerprint"),
    ("article_id", "articleId"),
    ("category_id", "categoryId"),
    ("original_id", "originalID"),
];

/// Values suggested by a field's name, for string fields; `Type.field` entries win over
/// `field` ones.
const BY_NAME: &[(&str, &str)] = &[
    ("email", "ada@example.com"),
    ("recipient", "ada@example.com"),
    ("nickname", "Ada Lovelace"),
    ("first_name", "Ada"),
    ("last_name", "Lovelace"),
    ("name", "Example"),
    ("phone", "+33 6 00 00 00 00"),
    ("domain", "example.com"),
    ("domain_basic", "example"),
    ("url", "https://example.com/"),
    ("helpdesk_url", "https://help.example.com/"),
    ("avatar", "https://example.com/avatar.png"),
    ("logo", "https://example.com/logo.png"),
    ("image", "https://example.com/image.png"),
    ("content", "Hello from crisp-gateway"),
    ("message", "Hello from crisp-gateway"),
    ("text", "Hello from crisp-gateway"),
    ("excerpt", "Hello"),
    ("subject", "Hello"),
    ("title", "Getting started"),
    ("description", "An example."),
    ("note", "Call back about the order."),
    ("notepad", "Met at the conference."),
    ("date", "2026-01-15T09:00:00.000Z"),
    ("locale", "en"),
    ("origin", "chat"),
    ("role", "member"),
    ("color", "blue"),
    ("emoji", "🎧"),
    ("segment", "vip"),
    ("segments", "vip"),
    ("key", "plan"),
    ("code", "WELCOME"),
    ("verify", "password"),
    ("secret", "password"),
    ("method", "password"),
    ("flag", "spam"),
    ("identity", "email"),
    ("namespace", "example"),
    ("identifier", "example"),
    ("command", "example"),
    ("gender", "female"),
    ("plan_id", "8d1c7e9e-2f4b-4c0e-9a55-5b1f3f0d7c21"),
    ("plan", "pro"),
    ("ip", "203.0.113.7"),
    ("address", "1 Example Street, Paris"),
    ("legal_name", "Example Inc."),
    ("banner", "https://example.com/banner.png"),
    ("writing_locale", "en"),
    ("custom", "help.example.com"),
    ("basic", "example"),
    ("mode", "audio"),
    ("column_separator", ","),
    ("field", "email"),
    ("ActingUser.type", "website"),
    ("ConversationParticipant.type", "email"),
    ("ConversationParticipant.target", "ada@example.com"),
    ("Team.name", "Support"),
    ("Inbox.name", "Billing"),
    ("CampaignNew.name", "Spring newsletter"),
    ("Campaign.name", "Spring newsletter"),
    ("CampaignTemplateNew.name", "Newsletter"),
    ("CampaignTemplate.name", "Newsletter"),
    ("HelpdeskGroupNew.name", "Getting started"),
    ("HelpdeskCategory.name", "Getting started"),
    ("HelpdeskSection.name", "Installation"),
    ("HelpdeskInit.name", "Example Help Center"),
    ("HelpdeskSettings.name", "Example Help Center"),
    ("WebsiteNew.name", "Example"),
    ("PeopleEventNew.text", "Signed up"),
    ("SuggestedEventDelete.text", "Signed up"),
    ("PluginEventDispatch.name", "order.created"),
    ("PluginUsage.name", "messages"),
    ("CampaignNew.type", "one-shot"),
    ("Campaign.type", "one-shot"),
    ("CampaignNew.format", "markdown"),
    ("Campaign.format", "markdown"),
    ("CampaignTemplateNew.format", "markdown"),
    ("CampaignTemplate.format", "markdown"),
    ("TranscriptRequest.to", "user"),
    ("HelpdeskRedirectionNew.path", "/old-page"),
    ("HelpdeskRedirectionNew.target", "/new-page"),
    ("HelpdeskTreePathUpdate.action", "update"),
    ("HelpdeskChangeCancel.action", "cancel"),
    ("SpamDecision.action", "accept"),
    ("BrowsingAction.action", "start"),
    ("HelpdeskTreeMetadata.format", "markdown"),
    (
        "HelpdeskTreeContentSave.content",
        "# Getting started\n\nHello from crisp-gateway.",
    ),
];

/// An example value of `ty`. `id` answers for id fields: given the path parameter that names
/// the same id (`sessionID` for `session_id` and `sessions`), the text to put there.
pub fn value(ty: &Ty, id: &dyn Fn(&str) -> String) -> Value {
    Builder {
        types: CATALOG.types(),
        id,
    }
    .value(ty, None, None, 0)
}

/// An example value of `ty` with literal ids ([`literal_id`]), for reference documents.
pub fn literal(ty: &Ty) -> Value {
    value(ty, &|param| literal_id(param))
}

/// The example body of a write: `None` for reads and writes that send no body.
pub fn body(action: &Action, id: &dyn Fn(&str) -> String) -> Option<Value> {
    action.body.as_ref().map(|ty| value(ty, id))
}

/// The request an action's example sends to the gateway: its required path parameters (`id`
/// gives each value) and, for a write with a typed body, the example body.
pub fn request(action: &Action, id: &dyn Fn(&str) -> String) -> Value {
    let mut object = Map::new();
    for param in &action.params {
        match param.kind {
            ParamKind::Path if param.required => {
                object.insert(param.name.to_owned(), json!(id(param.name)));
            }
            ParamKind::Body => {
                if let Some(body) = body(action, id) {
                    object.insert("body".to_owned(), body);
                }
            }
            _ => {}
        }
    }
    Value::Object(object)
}

/// [`request`] with literal ids: the example for reference documents (OpenAPI).
pub fn literal_request(action: &Action) -> Value {
    request(action, &|param| literal_id(param))
}

/// A plausible, fixed value for a path parameter or id (`sessionID` → `session_…`,
/// `locale` → `en`): the same text every time, so generated documents do not drift.
pub fn literal_id(param: &str) -> String {
    match param {
        "locale" | "localeLinked" => return if param == "locale" { "en" } else { "fr" }.into(),
        "contentType" => return "articles".into(),
        "path" => return "getting-started".into(),
        "fingerprint" => return "1767225600000123".into(),
        "action" => return "clicked".into(),
        "rule" => return "ip".into(),
        "pageNumber" => return "1".into(),
        _ => {}
    }
    // A version-4-shaped UUID from the name's FNV-1a hash: distinct per name, stable forever.
    let hash = |seed: u64| {
        param.bytes().fold(0xcbf2_9ce4_8422_2325 ^ seed, |h, b| {
            (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
        })
    };
    let (a, b) = (hash(0), hash(0x9e37_79b9_7f4a_7c15));
    let uuid = format!(
        "{:08x}-{:04x}-4{:03x}-{:04x}-{:012x}",
        a >> 32,
        (a >> 16) & 0xffff,
        a & 0x0fff,
        0x8000 | ((b >> 48) & 0x3fff),
        b & 0xffff_ffff_ffff
    );
    match param {
        "sessionID" => format!("session_{uuid}"),
        _ => uuid,
    }
}

struct Builder<'a> {
    types: &'a Types,
    id: &'a dyn Fn(&str) -> String,
}

impl Builder<'_> {
    /// `owner` is the named type holding the field `field` (for `Type.field` names).
    fn value(&self, ty: &Ty, owner: Option<&str>, field: Option<&str>, depth: usize) -> Value {
        if let Some(named) = field.and_then(|f| self.by_name(ty, owner, f)) {
            return named;
        }
        match ty {
            Ty::String | Ty::Any => json!("example"),
            Ty::Integer => json!(if field.is_some_and(is_time) {
                1_767_225_600_000_i64
            } else {
                1
            }),
            Ty::Number => json!(1),
            Ty::Boolean => json!(true),
            Ty::Object => json!({}),
            Ty::Null => Value::Null,
            Ty::Array(item) => json!([self.value(item, owner, field, depth + 1)]),
            Ty::Union(members) => {
                // The first member that is not null: `string|null` shows a string.
                let member = members
                    .iter()
                    .find(|m| **m != Ty::Null)
                    .unwrap_or(&Ty::Null);
                self.value(member, owner, field, depth)
            }
            Ty::Named(id) => {
                let named = self.types.named(*id);
                match &named.shape {
                    Shape::Enum(values) => json!(values.first()),
                    Shape::Map(of) => {
                        let mut map = Map::new();
                        map.insert("plan".into(), self.value(of, None, Some("plan"), depth + 1));
                        Value::Object(map)
                    }
                    Shape::Fields(_) if depth >= MAX_DEPTH => json!({}),
                    Shape::Fields(fields) => {
                        let clearer = CLEARER
                            .iter()
                            .find(|(name, _)| *name == named.name)
                            .map(|(_, fields)| *fields);
                        // A type listed in `CLEARER` shows exactly the fields listed there.
                        let any_required = clearer.is_some() || fields.iter().any(|f| f.required);
                        let clearer = clearer.unwrap_or_default();
                        let mut shown_optional = 0;
                        let mut object = Map::new();
                        for (i, f) in fields.iter().enumerate() {
                            let wanted = if f.required || clearer.contains(&f.name) {
                                true
                            } else if any_required || shown_optional == OPTIONAL_SHOWN {
                                false
                            } else {
                                // An object's own id and times are Crisp's to set.
                                let own_id = i == 0 && f.name.ends_with("_id") && fields.len() > 2;
                                let shown = !own_id
                                    && !is_time(f.name)
                                    && (depth == 0 || self.is_plain(&f.ty));
                                shown_optional += usize::from(shown);
                                shown
                            };
                            if wanted {
                                let v =
                                    self.value(&f.ty, Some(named.name), Some(f.name), depth + 1);
                                object.insert(f.name.to_owned(), v);
                            }
                        }
                        Value::Object(object)
                    }
                }
            }
        }
    }

    /// The value a field's name suggests, when it fits the field's type.
    fn by_name(&self, ty: &Ty, owner: Option<&str>, field: &str) -> Option<Value> {
        let suggested = if let Some((_, param)) = ID_FIELDS.iter().find(|(f, _)| *f == field) {
            (self.id)(param)
        } else {
            let qualified = owner.map(|o| format!("{o}.{field}"));
            let text = BY_NAME
                .iter()
                .find(|(name, _)| Some(*name) == qualified.as_deref())
                .or_else(|| BY_NAME.iter().find(|(name, _)| *name == field))?
                .1;
            text.to_owned()
        };
        [json!(suggested), json!([suggested])]
            .into_iter()
            .find(|v| self.types.check(ty, v, "example").is_ok())
    }

    /// Whether a type is shown plainly in a nested example: a scalar, an enum or a list of them.
    fn is_plain(&self, ty: &Ty) -> bool {
        match ty {
            Ty::String | Ty::Integer | Ty::Number | Ty::Boolean => true,
            Ty::Array(item) => self.is_plain(item),
            Ty::Union(members) => members.iter().all(|m| *m == Ty::Null || self.is_plain(m)),
            Ty::Named(id) => matches!(self.types.named(*id).shape, Shape::Enum(_)),
            Ty::Object | Ty::Any | Ty::Null => false,
        }
    }
}

fn is_time(field: &str) -> bool {
    field.ends_with("_at") || field == "timestamp"
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_example_request_is_accepted_by_the_gateway() {
        for action in CATALOG.actions() {
            let Value::Object(example) = literal_request(action) else {
                panic!("{} example is not an object", action.slug);
            };
            crate::call::args::from_object(action, example)
                .unwrap_or_else(|e| panic!("{}: {}", action.slug, e.message()));
        }
    }

    #[test]
    fn every_write_with_a_body_type_has_an_example_body_that_fits() {
        let types = CATALOG.types();
        for action in CATALOG.actions().iter().filter(|a| a.write) {
            let Some(ty) = &action.body else { continue };
            let body = literal(ty);
            assert!(body.is_object(), "{}: {body}", action.slug);
            types
                .check(ty, &body, "body")
                .unwrap_or_else(|m| panic!("{}: {m}", action.slug));
        }
    }

    #[test]
    fn a_message_reads_like_one() {
        let action = CATALOG
            .get("send/message/in/conversation")
            .expect("action exists");
        assert_eq!(
            literal_request(action),
            json!({
                "sessionID": literal_id("sessionID"),
                "body": {"type": "text", "from": "user", "origin": "chat", "content": "Hello from crisp-gateway"}
            })
        );
    }

    #[test]
    fn ids_come_from_the_caller() {
        let action = CATALOG
            .get("batch/resolve/conversations")
            .expect("action exists");
        let request = request(action, &|param| format!("{{{{{param}}}}}"));
        assert_eq!(request["body"]["sessions"], json!(["{{sessionID}}"]));
    }

    #[test]
    fn literal_ids_are_stable_and_distinct() {
        assert_eq!(literal_id("peopleID"), literal_id("peopleID"));
        assert_ne!(literal_id("peopleID"), literal_id("userID"));
        assert!(literal_id("sessionID").starts_with("session_"));
        assert_eq!(literal_id("userID").len(), 36);
    }
}
