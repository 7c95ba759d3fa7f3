//! Messages in a conversation: send, list by `timestamp_before`, get, update, remove.

use axum::http::StatusCode;
use serde_json::{Map, Value, json};

use super::Call;
use super::answer::{Answer, Checked, Kind, object, one_of, only, required, typed};
use super::state::Website;

const TYPES: [&str; 9] = [
    "text",
    "note",
    "file",
    "animation",
    "audio",
    "picker",
    "field",
    "carousel",
    "event",
];
/// How many messages one `get/messages/in/conversation` page holds.
const PAGE: usize = 20;

pub fn handle(call: &Call, site: &mut Website) -> Option<Checked<Answer>> {
    let answer = match call.slug {
        "send/message/in/conversation" => send(call, site),
        "get/messages/in/conversation" => list(call, site),
        "get/message/in/conversation" => get(call, site),
        "update/message/in/conversation" => update(call, site),
        "remove/message/in/conversation" => remove(call, site),
        _ => return None,
    };
    Some(answer)
}

/// `text` and `note` carry a string; every other type an object.
fn check_content(kind: &str, content: &Value) -> Checked<()> {
    let wants_string = matches!(kind, "text" | "note");
    match (wants_string, content) {
        (true, Value::String(s)) if !s.is_empty() => Ok(()),
        (true, Value::String(_)) => Err(Answer::invalid(
            "data.content should NOT be shorter than 1 characters",
        )),
        (true, _) => Err(Answer::invalid("data.content should be string")),
        (false, Value::Object(_)) => Ok(()),
        (false, _) => Err(Answer::invalid("data.content should be object")),
    }
}

fn check_origin(origin: &str) -> Checked<()> {
    if matches!(origin, "chat" | "email") || origin.starts_with("urn:") {
        Ok(())
    } else {
        Err(Answer::invalid(
            "data.origin should match pattern \"^(chat|email|urn:[a-z0-9:._-]+)$\"",
        ))
    }
}

/// Adds a message to a conversation and returns its fingerprint (also used by the seed).
pub fn push(site: &mut Website, session_id: &str, body: &Map<String, Value>) -> Checked<u64> {
    let now = site.tick();
    let website_id = site.website_id.clone();
    let conversation = site.conversation(session_id)?;
    let fingerprint = body
        .get("fingerprint")
        .and_then(Value::as_u64)
        .unwrap_or_else(|| {
            u64::try_from(now).unwrap_or(0) * 1000
                + u64::from(crate::secret::random_bytes::<1>()[0])
        });
    let from = body["from"].as_str().unwrap_or("operator");
    let mut message = json!({
        "session_id": session_id,
        "website_id": website_id,
        "type": body["type"],
        "from": from,
        "origin": body["origin"],
        "content": body["content"],
        "fingerprint": fingerprint,
        "timestamp": body.get("timestamp").and_then(Value::as_i64).unwrap_or(now),
        "stamped": true,
        "user": body.get("user").cloned().unwrap_or_else(|| json!({
            "type": if from == "operator" { "website" } else { "participant" },
            "nickname": if from == "operator" { "Sandbox" } else { "visitor" },
        })),
        "read": "",
        "delivered": "",
        "mentions": body.get("mentions").cloned().unwrap_or_else(|| json!([])),
        "edited": false,
        "translated": false,
    });
    for optional in [
        "references",
        "original",
        "properties",
        "stealth",
        "automated",
    ] {
        if let Some(value) = body.get(optional) {
            message[optional] = value.clone();
        }
    }
    conversation.messages.push(message);
    conversation.updated_at = now;
    // Notes are private to operators; nothing becomes unread for the visitor.
    match (from, body["type"].as_str()) {
        ("user", _) => conversation.unread_operator += 1,
        (_, Some("note")) => {}
        _ => conversation.unread_visitor += 1,
    }
    // A visitor writing again reopens a resolved conversation, as in the Crisp inbox.
    if from == "user" && conversation.state == "resolved" {
        conversation.state = "unresolved";
    }
    Ok(fingerprint)
}

fn send(call: &Call, site: &mut Website) -> Checked<Answer> {
    let body = object(&call.body)?;
    for field in ["type", "from", "origin", "content"] {
        required(body, field)?;
    }
    let kind = one_of(body, "type", &TYPES)?;
    one_of(body, "from", &["operator", "user"])?;
    check_origin(super::answer::required_str(body, "origin")?)?;
    check_content(kind, &body["content"])?;
    typed(body, "user", Kind::Object)?;
    typed(body, "mentions", Kind::Array)?;
    typed(body, "stealth", Kind::Boolean)?;
    if body.get("fingerprint").is_some_and(|f| !f.is_u64()) {
        return Err(Answer::invalid("data.fingerprint should be number"));
    }
    let fingerprint = push(site, call.param("sessionID"), body)?;
    // Crisp accepts a message for delivery rather than delivering it in the call.
    Ok(Answer {
        status: StatusCode::ACCEPTED,
        reason: "dispatched",
        data: json!({ "fingerprint": fingerprint }),
    })
}

fn list(call: &Call, site: &mut Website) -> Checked<Answer> {
    let before = match call.query.get("timestamp_before") {
        None => None,
        Some(raw) => Some(
            raw.parse::<i64>()
                .map_err(|_| Answer::invalid("data.timestamp_before should be number"))?,
        ),
    };
    let conversation = site.conversation(call.param("sessionID"))?;
    let older: Vec<&Value> = conversation
        .messages
        .iter()
        .filter(|m| before.is_none_or(|b| m["timestamp"].as_i64().is_some_and(|t| t < b)))
        .collect();
    // The newest page before the cursor, oldest first: a client pages back in time by passing
    // the first message's timestamp as the next `timestamp_before`.
    let from = older.len().saturating_sub(PAGE);
    let items: Vec<Value> = older[from..].iter().map(|m| (*m).clone()).collect();
    Ok(Answer::ok("resolved", Value::Array(items)))
}

fn find<'a>(call: &Call, site: &'a mut Website) -> Checked<&'a mut Value> {
    let fingerprint: Option<u64> = call.param("fingerprint").parse().ok();
    let conversation = site.conversation(call.param("sessionID"))?;
    conversation
        .messages
        .iter_mut()
        .find(|m| fingerprint.is_some() && m["fingerprint"].as_u64() == fingerprint)
        .ok_or_else(|| Answer::not_found("message"))
}

fn get(call: &Call, site: &mut Website) -> Checked<Answer> {
    Ok(Answer::ok("resolved", find(call, site)?.clone()))
}

fn update(call: &Call, site: &mut Website) -> Checked<Answer> {
    let body = object(&call.body)?;
    only(body, &["content"])?;
    let content = required(body, "content")?.clone();
    let message = find(call, site)?;
    check_content(message["type"].as_str().unwrap_or("text"), &content)?;
    message["content"] = content;
    message["edited"] = json!(true);
    Ok(Answer::ok("updated", json!({})))
}

fn remove(call: &Call, site: &mut Website) -> Checked<Answer> {
    let fingerprint = find(call, site)?["fingerprint"].clone();
    let conversation = site.conversation(call.param("sessionID"))?;
    conversation
        .messages
        .retain(|m| m["fingerprint"] != fingerprint);
    Ok(Answer::ok("deleted", json!({})))
}
