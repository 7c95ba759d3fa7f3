//! People profiles: add, list with search, get, save/update, remove, events and data.

use axum::http::StatusCode;
use serde_json::{Map, Value, json};

use super::Call;
use super::answer::{
    Answer, Checked, Kind, email, merge, object, only, required, required_str, typed,
};
use super::state::{Profile, Website, page, uuid};

const CARD_FIELDS: [&str; 6] = [
    "email", "person", "company", "segments", "notepad", "active",
];

pub fn handle(call: &Call, site: &mut Website) -> Option<Checked<Answer>> {
    let answer = match call.slug {
        "add/new/people/profile" => add(call, site),
        "list/people/profiles" => list(call, site),
        "check/people/profile/exists" => site
            .profile(call.param("peopleID"))
            .map(|_| Answer::ok("", json!({}))),
        "get/people/profile" => site
            .profile(call.param("peopleID"))
            .map(|p| Answer::ok("resolved", view(p))),
        "save/people/profile" => save(call, site, true),
        "update/people/profile" => save(call, site, false),
        "remove/people/profile" => remove(call, site),
        "add/people/event" => add_event(call, site),
        "list/people/events" => list_events(call, site),
        "get/people/data" => site
            .profile(call.param("peopleID"))
            .map(|p| Answer::ok("resolved", json!({ "data": p.data }))),
        "save/people/data" => save_data(call, site, true),
        "update/people/data" => save_data(call, site, false),
        _ => return None,
    };
    Some(answer)
}

fn view(p: &Profile) -> Value {
    let mut out = json!({
        "people_id": p.people_id,
        "email": null,
        "person": {},
        "company": {},
        "segments": [],
        "notepad": "",
        "active": null,
        "created_at": p.created_at,
        "updated_at": p.updated_at,
    });
    if let Some(out) = out.as_object_mut() {
        for (k, v) in &p.card {
            out.insert(k.clone(), v.clone());
        }
    }
    out
}

/// Checks a people card; `full` cards (add, save) need the e-mail and a nickname.
fn check_card(body: &Map<String, Value>, full: bool) -> Checked<()> {
    only(body, &CARD_FIELDS)?;
    typed(body, "email", Kind::String)?;
    typed(body, "person", Kind::Object)?;
    typed(body, "company", Kind::Object)?;
    typed(body, "segments", Kind::Array)?;
    typed(body, "notepad", Kind::String)?;
    if full {
        required(body, "email")?;
        let person = required(body, "person")?;
        person
            .as_object()
            .and_then(|p| p.get("nickname"))
            .filter(|n| n.is_string())
            .ok_or_else(|| {
                Answer::invalid("data.person should have required property 'nickname'")
            })?;
    }
    if let Some(address) = body.get("email").and_then(Value::as_str) {
        email(address, "email")?;
    }
    Ok(())
}

/// Adds a profile (also used by the seed); refuses a second profile with the same e-mail.
pub fn insert(site: &mut Website, card: &Map<String, Value>) -> Checked<String> {
    check_card(card, true)?;
    let address = card.get("email").and_then(Value::as_str).unwrap_or("");
    if site.profile(address).is_ok() {
        // Crisp keys people by e-mail; the exact status of a duplicate is not documented.
        return Err(Answer::error(
            StatusCode::CONFLICT,
            "people_exists",
            "a people profile with this email already exists",
        ));
    }
    let now = site.tick();
    let people_id = uuid();
    site.people.push(Profile {
        people_id: people_id.clone(),
        card: card.clone(),
        data: Map::new(),
        events: Vec::new(),
        created_at: now,
        updated_at: now,
    });
    Ok(people_id)
}

fn add(call: &Call, site: &mut Website) -> Checked<Answer> {
    let people_id = insert(site, object(&call.body)?)?;
    Ok(Answer::ok("added", json!({ "people_id": people_id })))
}

fn list(call: &Call, site: &mut Website) -> Checked<Answer> {
    let (number, per_page) = (call.page()?, call.per_page()?);
    let search = call
        .query
        .get("search_text")
        .map(|s| s.trim().to_lowercase())
        .filter(|s| !s.is_empty());
    let matches = |p: &&Profile| {
        search.as_deref().is_none_or(|q| {
            let email = p.card.get("email").and_then(Value::as_str).unwrap_or("");
            let nickname = p
                .card
                .get("person")
                .and_then(|x| x.get("nickname"))
                .and_then(Value::as_str)
                .unwrap_or("");
            email.to_lowercase().contains(q) || nickname.to_lowercase().contains(q)
        })
    };
    let mut kept: Vec<&Profile> = site.people.iter().filter(matches).collect();
    if call.query.get("sort_order").map(String::as_str) == Some("ascending") {
        kept.sort_by_key(|p| p.created_at);
    } else {
        kept.sort_by_key(|p| std::cmp::Reverse(p.created_at));
    }
    let items: Vec<Value> = page(&kept, number, per_page)
        .iter()
        .map(|p| view(p))
        .collect();
    Ok(Answer::ok("resolved", Value::Array(items)))
}

fn save(call: &Call, site: &mut Website, overwrite: bool) -> Checked<Answer> {
    let body = object(&call.body)?;
    check_card(body, overwrite)?;
    let now = site.tick();
    let id = site.profile(call.param("peopleID"))?.people_id.clone();
    if let Some(address) = body.get("email").and_then(Value::as_str)
        && site.profile(address).is_ok_and(|p| p.people_id != id)
    {
        return Err(Answer::error(
            StatusCode::CONFLICT,
            "people_exists",
            "a people profile with this email already exists",
        ));
    }
    let profile = site.profile(&id)?;
    if overwrite {
        profile.card = body.clone();
    } else {
        merge(&mut profile.card, body);
    }
    profile.updated_at = now;
    Ok(Answer::ok("updated", json!({})))
}

fn remove(call: &Call, site: &mut Website) -> Checked<Answer> {
    let id = site.profile(call.param("peopleID"))?.people_id.clone();
    site.people.retain(|p| p.people_id != id);
    Ok(Answer::ok("deleted", json!({})))
}

fn add_event(call: &Call, site: &mut Website) -> Checked<Answer> {
    let body = object(&call.body)?;
    only(body, &["text", "data", "color"])?;
    let text = required_str(body, "text")?.to_owned();
    typed(body, "data", Kind::Object)?;
    typed(body, "color", Kind::String)?;
    let now = site.tick();
    let profile = site.profile(call.param("peopleID"))?;
    profile.events.push(json!({
        "text": text,
        "data": body.get("data").cloned().unwrap_or_else(|| json!({})),
        "color": body.get("color").cloned().unwrap_or_else(|| json!("blue")),
        "timestamp": now,
    }));
    Ok(Answer::ok("added", json!({})))
}

fn list_events(call: &Call, site: &mut Website) -> Checked<Answer> {
    let number = call.page()?;
    let profile = site.profile(call.param("peopleID"))?;
    // Newest first, twenty to a page.
    let events: Vec<Value> = profile.events.iter().rev().cloned().collect();
    Ok(Answer::ok(
        "resolved",
        Value::Array(page(&events, number, 20).to_vec()),
    ))
}

fn save_data(call: &Call, site: &mut Website, overwrite: bool) -> Checked<Answer> {
    let body = object(&call.body)?;
    only(body, &["data"])?;
    let data = required(body, "data")?
        .as_object()
        .ok_or_else(|| Answer::invalid("data.data should be object"))?
        .clone();
    let now = site.tick();
    let profile = site.profile(call.param("peopleID"))?;
    if overwrite {
        profile.data = data;
    } else {
        profile.data.extend(data);
    }
    profile.updated_at = now;
    Ok(Answer::ok("updated", json!({})))
}
