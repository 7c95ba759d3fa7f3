//! Teams of operators: create, list (pages), check, get, save (PUT replaces), delete.

use serde_json::{Map, Value, json};

use super::Call;
use super::answer::{Answer, Checked, Kind, object, typed};
use super::state::{Website, page, uuid};

/// A team as Crisp keeps it: its id and times, and the fields the caller sent (`name`, `emoji`,
/// `operators`, and whatever else Crisp may add).
#[derive(Debug, Clone)]
pub struct Team {
    pub team_id: String,
    pub fields: Map<String, Value>,
    pub created_at: i64,
    pub updated_at: i64,
}

/// Answers the team actions; `None` for any other action.
pub fn handle(call: &Call, site: &mut Website) -> Option<Checked<Answer>> {
    let answer = match call.slug {
        "list/teams" => list(call, site),
        "create/new/team" => create(call, site),
        "check/team/exists" => find(site, call.param("teamID")).map(|_| Answer::ok("", json!({}))),
        "get/team" => find(site, call.param("teamID")).map(|t| Answer::ok("resolved", view(t))),
        "save/team" => save(call, site),
        "delete/team" => delete(call, site),
        _ => return None,
    };
    Some(answer)
}

fn find<'a>(site: &'a mut Website, team_id: &str) -> Checked<&'a mut Team> {
    site.teams
        .iter_mut()
        .find(|t| t.team_id == team_id)
        .ok_or_else(|| Answer::not_found("team"))
}

/// A team as `Team` in the catalog reads it: the caller's fields, then the sandbox's own.
fn view(team: &Team) -> Value {
    let mut out = Map::new();
    out.insert("team_id".into(), json!(team.team_id));
    out.insert("name".into(), json!(""));
    out.insert("emoji".into(), json!(""));
    out.insert("operators".into(), json!([]));
    for (k, v) in &team.fields {
        out.insert(k.clone(), v.clone());
    }
    out.insert("team_id".into(), json!(team.team_id));
    out.insert("created_at".into(), json!(team.created_at));
    out.insert("updated_at".into(), json!(team.updated_at));
    Value::Object(out)
}

/// The fields of a `Team` body the sandbox keeps; the ids and times are its own.
fn fields(body: &Value) -> Checked<Map<String, Value>> {
    let body = object(body)?;
    typed(body, "name", Kind::String)?;
    typed(body, "emoji", Kind::String)?;
    typed(body, "operators", Kind::Array)?;
    if let Some(operators) = body.get("operators").and_then(Value::as_array)
        && operators.iter().any(|o| !o.is_string())
    {
        return Err(Answer::invalid("data.operators should be array of string"));
    }
    let mut kept = body.clone();
    for own in ["team_id", "created_at", "updated_at"] {
        kept.remove(own);
    }
    Ok(kept)
}

/// Adds a team (also used for the team every sandbox website starts with).
pub fn insert(site: &mut Website, fields: Map<String, Value>) -> String {
    let now = site.tick();
    let team_id = uuid();
    site.teams.push(Team {
        team_id: team_id.clone(),
        fields,
        created_at: now,
        updated_at: now,
    });
    team_id
}

fn create(call: &Call, site: &mut Website) -> Checked<Answer> {
    let fields = fields(&call.body)?;
    let team_id = insert(site, fields);
    Ok(Answer::ok("added", json!({ "team_id": team_id })))
}

fn list(call: &Call, site: &mut Website) -> Checked<Answer> {
    let (number, per_page) = (call.page()?, call.per_page()?);
    let items: Vec<Value> = page(&site.teams, number, per_page)
        .iter()
        .map(view)
        .collect();
    Ok(Answer::ok("resolved", Value::Array(items)))
}

fn save(call: &Call, site: &mut Website) -> Checked<Answer> {
    let fields = fields(&call.body)?;
    let now = site.tick();
    let team = find(site, call.param("teamID"))?;
    team.fields = fields;
    team.updated_at = now;
    Ok(Answer::ok("updated", json!({})))
}

fn delete(call: &Call, site: &mut Website) -> Checked<Answer> {
    let team_id = find(site, call.param("teamID"))?.team_id.clone();
    site.teams.retain(|t| t.team_id != team_id);
    Ok(Answer::ok("deleted", json!({})))
}
