//! Website settings (get, update) and the website itself (get), which shows the same name and
//! domain.

use serde_json::{Value, json};

use super::Call;
use super::answer::{Answer, Checked, Kind, merge, object, only, typed};
use super::state::Website;

const SECTIONS: [&str; 9] = [
    "name",
    "domain",
    "domain_alternates",
    "logo",
    "audit",
    "contact",
    "inbox",
    "emails",
    "chatbox",
];

pub fn handle(call: &Call, site: &mut Website) -> Option<Checked<Answer>> {
    let answer = match call.slug {
        "get/website" => Ok(Answer::ok(
            "resolved",
            json!({
                "website_id": site.website_id,
                "name": site.name(),
                "domain": site.domain(),
                "logo": site.settings.get("logo").cloned().unwrap_or(Value::Null),
            }),
        )),
        "get/website/settings" => Ok(Answer::ok("resolved", Value::Object(site.settings.clone()))),
        "update/website/settings" => update(call, site),
        _ => return None,
    };
    Some(answer)
}

fn update(call: &Call, site: &mut Website) -> Checked<Answer> {
    let body = object(&call.body)?;
    only(body, &SECTIONS)?;
    for field in ["name", "domain"] {
        typed(body, field, Kind::String)?;
    }
    for section in ["audit", "contact", "inbox", "emails", "chatbox"] {
        typed(body, section, Kind::Object)?;
    }
    typed(body, "domain_alternates", Kind::Array)?;
    if body
        .get("name")
        .and_then(Value::as_str)
        .is_some_and(|n| n.trim().is_empty())
    {
        return Err(Answer::invalid(
            "data.name should NOT be shorter than 1 characters",
        ));
    }
    merge(&mut site.settings, body);
    Ok(Answer::ok("updated", json!({})))
}
