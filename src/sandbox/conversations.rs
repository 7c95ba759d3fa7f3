//! Conversations: create, list (pages and `per_page`), get, state, metas, routing,
//! read/unread marks, removal, and existence checks.

use serde_json::{Map, Value, json};

use super::Call;
use super::answer::{
    Answer, Checked, Kind, email, object, one_of, only, required, required_str, typed,
};
use super::state::{Conversation, Website, page, uuid};

const STATES: [&str; 3] = ["pending", "unresolved", "resolved"];
const META_FIELDS: [&str; 12] = [
    "nickname",
    "email",
    "phone",
    "address",
    "subject",
    "avatar",
    "ip",
    "data",
    "segments",
    "origin",
    "device",
    "connection",
];

/// Answers the conversation actions; `None` for any other action.
pub fn handle(call: &Call, site: &mut Website) -> Option<Checked<Answer>> {
    let answer = match call.slug {
        "create/new/conversation" => create(site),
        "list/conversations" => list(call, site),
        "check/conversation/exists" => site
            .conversation(call.param("sessionID"))
            .map(|_| Answer::ok("", json!({}))),
        "get/conversation" => get(call, site),
        "remove/conversation" => remove(call, site),
        "get/conversation/state" => site
            .conversation(call.param("sessionID"))
            .map(|c| Answer::ok("resolved", json!({ "state": c.state }))),
        "change/conversation/state" => change_state(call, site),
        "get/conversation/metas" => site
            .conversation(call.param("sessionID"))
            .map(|c| Answer::ok("resolved", Value::Object(c.meta.clone()))),
        "update/conversation/metas" => update_metas(call, site),
        "get/conversation/routing/assign" => site.conversation(call.param("sessionID")).map(|c| {
            Answer::ok(
                "resolved",
                json!({ "assigned": c.assigned.as_ref().map(|u| json!({ "user_id": u })) }),
            )
        }),
        "assign/conversation/routing" => assign(call, site),
        "mark/messages/read/in/conversation" => mark_read(call, site),
        "mark/conversation/as/unread" => mark_unread(call, site),
        _ => return None,
    };
    Some(answer)
}

pub fn view(website_id: &str, c: &Conversation) -> Value {
    let last = c.messages.last();
    json!({
        "session_id": c.session_id,
        "website_id": website_id,
        "inbox_id": null,
        "people_id": null,
        "state": c.state,
        "status": STATES.iter().position(|s| *s == c.state).unwrap_or(0),
        "is_verified": false,
        "is_blocked": c.blocked,
        "availability": "offline",
        "active": { "now": false },
        "last_message": last.and_then(|m| m["content"].as_str()).unwrap_or(""),
        "preview_message": last.map(|m| json!({
            "type": m["type"], "from": m["from"], "excerpt": m["content"].as_str().unwrap_or(""),
            "fingerprint": m["fingerprint"],
        })),
        "topic": null,
        "participants": [],
        "mentions": [],
        "compose": {},
        "meta": c.meta,
        "unread": { "operator": c.unread_operator, "visitor": c.unread_visitor },
        "assigned": c.assigned.as_ref().map(|u| json!({ "user_id": u })),
        "created_at": c.created_at,
        "updated_at": c.updated_at,
        "waiting_since": c.updated_at,
    })
}

pub fn new_conversation(site: &mut Website, meta: Map<String, Value>) -> String {
    let now = site.tick();
    let session_id = format!("session_{}", uuid());
    let mut full = json!({
        "nickname": format!("visitor{}", &session_id[8..12]),
        "email": null, "phone": null, "address": null, "subject": null, "avatar": null,
        "ip": null, "data": {}, "segments": [], "origin": "chat",
    });
    if let Some(full) = full.as_object_mut() {
        full.extend(meta);
    }
    site.conversations.push(Conversation {
        session_id: session_id.clone(),
        state: "pending",
        meta: full.as_object().cloned().unwrap_or_default(),
        assigned: None,
        blocked: false,
        unread_operator: 0,
        unread_visitor: 0,
        created_at: now,
        updated_at: now,
        messages: Vec::new(),
    });
    session_id
}

fn create(site: &mut Website) -> Checked<Answer> {
    let session_id = new_conversation(site, Map::new());
    Ok(Answer::ok("added", json!({ "session_id": session_id })))
}

fn list(call: &Call, site: &mut Website) -> Checked<Answer> {
    let (number, per_page) = (call.page()?, call.per_page()?);
    let mut all: Vec<&Conversation> = site.conversations.iter().collect();
    // Crisp lists the most recently active conversations first.
    all.sort_by_key(|c| std::cmp::Reverse(c.updated_at));
    let search = call.query.get("search_query").map(|q| q.to_lowercase());
    let filter_resolved = call.query.get("filter_resolved").map(String::as_str) == Some("1");
    let filter_not_resolved =
        call.query.get("filter_not_resolved").map(String::as_str) == Some("1");
    let filter_unread = call.query.get("filter_unread").map(String::as_str) == Some("1");
    let kept: Vec<&Conversation> = all
        .into_iter()
        .filter(|c| !filter_resolved || c.state == "resolved")
        .filter(|c| !filter_not_resolved || c.state != "resolved")
        .filter(|c| !filter_unread || c.unread_operator > 0)
        .filter(|c| {
            search.as_deref().is_none_or(|q| {
                ["nickname", "email", "subject"].iter().any(|k| {
                    c.meta
                        .get(*k)
                        .and_then(Value::as_str)
                        .is_some_and(|v| v.to_lowercase().contains(q))
                }) || c.messages.iter().any(|m| {
                    m["content"]
                        .as_str()
                        .is_some_and(|t| t.to_lowercase().contains(q))
                })
            })
        })
        .collect();
    let items: Vec<Value> = page(&kept, number, per_page)
        .iter()
        .map(|c| view(&site.website_id, c))
        .collect();
    Ok(Answer::ok("resolved", Value::Array(items)))
}

fn get(call: &Call, site: &mut Website) -> Checked<Answer> {
    let website_id = site.website_id.clone();
    let c = site.conversation(call.param("sessionID"))?;
    Ok(Answer::ok("resolved", view(&website_id, c)))
}

fn remove(call: &Call, site: &mut Website) -> Checked<Answer> {
    let id = call.param("sessionID");
    site.conversation(id)?;
    site.conversations.retain(|c| c.session_id != id);
    Ok(Answer::ok("deleted", json!({})))
}

fn change_state(call: &Call, site: &mut Website) -> Checked<Answer> {
    let body = object(&call.body)?;
    only(body, &["state", "user", "origin"])?;
    let state = one_of(body, "state", &STATES)?;
    let state = STATES
        .into_iter()
        .find(|s| *s == state)
        .unwrap_or("pending");
    let now = site.tick();
    let c = site.conversation(call.param("sessionID"))?;
    c.state = state;
    c.updated_at = now;
    Ok(Answer::ok("updated", json!({})))
}

fn update_metas(call: &Call, site: &mut Website) -> Checked<Answer> {
    let body = object(&call.body)?;
    only(body, &META_FIELDS)?;
    for field in [
        "nickname", "email", "phone", "address", "subject", "avatar", "ip", "origin",
    ] {
        typed(body, field, Kind::String)?;
    }
    typed(body, "data", Kind::Object)?;
    typed(body, "segments", Kind::Array)?;
    if let Some(address) = body.get("email").and_then(Value::as_str) {
        email(address, "email")?;
    }
    if body
        .get("segments")
        .and_then(Value::as_array)
        .is_some_and(|s| s.iter().any(|v| !v.is_string()))
    {
        return Err(Answer::invalid("data.segments[0] should be string"));
    }
    let now = site.tick();
    let c = site.conversation(call.param("sessionID"))?;
    for (key, value) in body {
        c.meta.insert(key.clone(), value.clone());
    }
    c.updated_at = now;
    Ok(Answer::ok("updated", json!({})))
}

fn assign(call: &Call, site: &mut Website) -> Checked<Answer> {
    let body = object(&call.body)?;
    only(body, &["assigned", "silent"])?;
    let assigned = match body.get("assigned") {
        None => {
            return Err(Answer::invalid(
                "data should have required property 'assigned'",
            ));
        }
        Some(Value::Null) => None,
        Some(Value::Object(a)) => Some(required_str(a, "user_id").map_err(|_| {
            Answer::invalid("data.assigned should have required property 'user_id'")
        })?),
        Some(_) => return Err(Answer::invalid("data.assigned should be object,null")),
    };
    let known = |id: &str| site.operators.iter().any(|o| o["details"]["user_id"] == id);
    if assigned.is_some_and(|id| !known(id)) {
        return Err(Answer::not_found("operator"));
    }
    let assigned = assigned.map(str::to_owned);
    let now = site.tick();
    let c = site.conversation(call.param("sessionID"))?;
    c.assigned = assigned;
    c.updated_at = now;
    Ok(Answer::ok("updated", json!({})))
}

fn mark_read(call: &Call, site: &mut Website) -> Checked<Answer> {
    let body = object(&call.body)?;
    only(body, &["from", "origin", "fingerprints"])?;
    let from = one_of(body, "from", &["operator", "user"])?;
    required_str(body, "origin")?;
    typed(body, "fingerprints", Kind::Array)?;
    let only_these: Option<Vec<u64>> = body
        .get("fingerprints")
        .and_then(Value::as_array)
        .map(|f| f.iter().filter_map(Value::as_u64).collect());
    let c = site.conversation(call.param("sessionID"))?;
    // Whoever reads marks what the other side sent.
    let other = if from == "operator" {
        "user"
    } else {
        "operator"
    };
    for m in c.messages.iter_mut().filter(|m| m["from"] == other) {
        let wanted = only_these
            .as_ref()
            .is_none_or(|f| m["fingerprint"].as_u64().is_some_and(|x| f.contains(&x)));
        if wanted {
            m["read"] = json!("chat");
        }
    }
    if from == "operator" {
        c.unread_operator = 0;
    } else {
        c.unread_visitor = 0;
    }
    Ok(Answer::ok("updated", json!({})))
}

fn mark_unread(call: &Call, site: &mut Website) -> Checked<Answer> {
    let body = object(&call.body)?;
    only(body, &["from"])?;
    let from = one_of(body, "from", &["operator", "user"])?;
    required(body, "from")?;
    let c = site.conversation(call.param("sessionID"))?;
    if from == "operator" {
        c.unread_operator = c.unread_operator.max(1);
    } else {
        c.unread_visitor = c.unread_visitor.max(1);
    }
    Ok(Answer::ok("updated", json!({})))
}
