//! Website operators: list, get, invite, change membership, unlink.

use serde_json::{Value, json};

use super::Call;
use super::answer::{Answer, Checked, Kind, email, object, one_of, only, required_str, typed};
use super::state::{Website, uuid};

const ROLES: [&str; 2] = ["owner", "member"];

pub fn handle(call: &Call, site: &mut Website) -> Option<Checked<Answer>> {
    let answer = match call.slug {
        "list/website/operators" => {
            Ok(Answer::ok("resolved", Value::Array(site.operators.clone())))
        }
        "get/website/operator" => {
            find(site, call.param("userID")).map(|o| Answer::ok("resolved", o.clone()))
        }
        "invite/website/operator" => invite(call, site),
        "change/operator/membership" => change(call, site),
        "unlink/operator/from/website" => unlink(call, site),
        _ => return None,
    };
    Some(answer)
}

fn find<'a>(site: &'a mut Website, user_id: &str) -> Checked<&'a mut Value> {
    site.operators
        .iter_mut()
        .find(|o| o["details"]["user_id"] == user_id)
        .ok_or_else(|| Answer::not_found("operator"))
}

fn invite(call: &Call, site: &mut Website) -> Checked<Answer> {
    let body = object(&call.body)?;
    only(body, &["email", "role", "verify"])?;
    let address = required_str(body, "email")?;
    email(address, "email")?;
    let role = one_of(body, "role", &ROLES)?;
    // Crisp asks for the inviting user's password; the sandbox only checks it is there.
    required_str(body, "verify")?;
    let taken = site
        .operators
        .iter()
        .any(|o| o["details"]["email"] == address);
    if taken {
        return Err(Answer::invalid(
            "data.email is already a member of this website",
        ));
    }
    site.operators.push(json!({
        "type": "invitation",
        "details": { "user_id": uuid(), "email": address, "role": role, "title": null },
    }));
    Ok(Answer::ok("added", json!({})))
}

fn change(call: &Call, site: &mut Website) -> Checked<Answer> {
    let body = object(&call.body)?;
    only(body, &["role", "title"])?;
    if body.contains_key("role") {
        one_of(body, "role", &ROLES)?;
    }
    typed(body, "title", Kind::String)?;
    let operator = find(site, call.param("userID"))?;
    for key in ["role", "title"] {
        if let Some(value) = body.get(key) {
            operator["details"][key] = value.clone();
        }
    }
    Ok(Answer::ok("updated", json!({})))
}

fn unlink(call: &Call, site: &mut Website) -> Checked<Answer> {
    let user_id = call.param("userID");
    find(site, user_id)?;
    site.operators
        .retain(|o| o["details"]["user_id"] != user_id);
    Ok(Answer::ok("deleted", json!({})))
}
