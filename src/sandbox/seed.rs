//! `--seed FILE`: a TOML file that fixes the sandbox's accounts (identifier, key, tier, the
//! websites each may use) and its websites with their starting data.
//!
//! Every website, seeded or made on first use, starts with a team (`Support`) and a small
//! Knowledge Base tree (locale `en`, content type `articles`: `getting-started`,
//! `getting-started/install`, `faq`), so that their reads answer something out of the box.
//!
//! ```toml
//! [[account]]
//! identifier = "id-main"
//! key = "key-main"
//! tier = "website"            # website | plugin | user
//! websites = ["web-main"]     # for a plugin token: the websites it is installed on
//!
//! [[website]]
//! id = "web-main"
//! name = "Acme"
//! domain = "acme.example"
//! operators = [{ email = "ann@acme.example", first_name = "Ann", last_name = "Lee", role = "owner" }]
//! people = [{ email = "bob@example.com", nickname = "Bob" }]
//!
//! [[website.conversation]]
//! nickname = "Bob"
//! email = "bob@example.com"
//! state = "unresolved"
//! messages = [{ from = "user", content = "Hello!" }]
//! ```

use std::path::Path;

use serde::Deserialize;
use serde_json::{Map, Value, json};

use crate::accounts::Tier;

use super::state::Website;

/// A parsed seed: the accounts the sandbox accepts, and its websites.
#[derive(Debug, Clone)]
pub struct Seed {
    pub accounts: Vec<SeedAccount>,
    pub websites: Vec<Website>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SeedAccount {
    pub identifier: String,
    pub key: String,
    #[serde(deserialize_with = "tier")]
    pub tier: Tier,
    #[serde(default)]
    pub websites: Vec<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawSeed {
    #[serde(default)]
    account: Vec<SeedAccount>,
    #[serde(default)]
    website: Vec<RawWebsite>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawWebsite {
    id: String,
    #[serde(default = "default_name")]
    name: String,
    #[serde(default = "default_domain")]
    domain: String,
    #[serde(default)]
    operators: Vec<RawOperator>,
    #[serde(default)]
    people: Vec<RawPerson>,
    #[serde(default)]
    conversation: Vec<RawConversation>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawOperator {
    email: String,
    #[serde(default)]
    first_name: String,
    #[serde(default)]
    last_name: String,
    #[serde(default = "member")]
    role: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawPerson {
    email: String,
    nickname: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawConversation {
    nickname: Option<String>,
    email: Option<String>,
    #[serde(default = "pending")]
    state: String,
    #[serde(default)]
    messages: Vec<RawMessage>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawMessage {
    #[serde(default = "user")]
    from: String,
    content: String,
}

fn default_name() -> String {
    "Sandbox website".into()
}
fn default_domain() -> String {
    "sandbox.example".into()
}
fn member() -> String {
    "member".into()
}
fn pending() -> String {
    "pending".into()
}
fn user() -> String {
    "user".into()
}

fn tier<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Tier, D::Error> {
    String::deserialize(d)?
        .parse()
        .map_err(serde::de::Error::custom)
}

impl Seed {
    pub fn load(path: &Path) -> Result<Self, String> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| format!("cannot read the seed file {}: {e}", path.display()))?;
        Self::parse(&text).map_err(|e| format!("seed file {}: {e}", path.display()))
    }

    pub fn parse(text: &str) -> Result<Self, String> {
        let raw: RawSeed = toml::from_str(text).map_err(|e| e.to_string())?;
        let websites = raw
            .website
            .into_iter()
            .map(build)
            .collect::<Result<Vec<_>, _>>()?;
        for account in &raw.account {
            if let Some(missing) = account
                .websites
                .iter()
                .find(|w| !websites.iter().any(|s| &s.website_id == *w))
            {
                return Err(format!(
                    "account `{}` lists website `{missing}`, which the seed does not define",
                    account.identifier
                ));
            }
        }
        Ok(Self {
            accounts: raw.account,
            websites,
        })
    }
}

fn build(raw: RawWebsite) -> Result<Website, String> {
    let mut site = Website::new(&raw.id, &raw.name, &raw.domain);
    let problem = |what: &str, answer: super::answer::Answer| {
        format!("website `{}`: {what}: {}", raw.id, answer.data["message"])
    };
    if !raw.operators.is_empty() {
        site.operators.clear();
        let ids: Vec<String> = raw
            .operators
            .iter()
            .map(|o| site.add_operator(&o.email, &o.first_name, &o.last_name, &o.role))
            .collect();
        // What every website starts with names real operators: the seed's first one.
        for team in &mut site.teams {
            team.fields
                .insert("operators".into(), json!(&ids[..ids.len().min(1)]));
        }
        site.knowledge = Default::default();
        super::knowledge::seed(&mut site);
    }
    for p in &raw.people {
        let card = object(json!({ "email": p.email, "person": { "nickname": p.nickname } }));
        super::people::insert(&mut site, &card).map_err(|a| problem("people", a))?;
    }
    for c in raw.conversation {
        let mut meta = Map::new();
        if let Some(nickname) = c.nickname {
            meta.insert("nickname".into(), json!(nickname));
        }
        if let Some(email) = c.email {
            meta.insert("email".into(), json!(email));
        }
        let session_id = super::conversations::new_conversation(&mut site, meta);
        for m in &c.messages {
            let body = object(
                json!({ "type": "text", "from": m.from, "origin": "chat", "content": m.content }),
            );
            super::messages::push(&mut site, &session_id, &body)
                .map_err(|a| problem("message", a))?;
        }
        let state = ["pending", "unresolved", "resolved"]
            .into_iter()
            .find(|s| *s == c.state)
            .ok_or_else(|| {
                format!(
                    "website `{}`: unknown conversation state `{}`",
                    raw.id, c.state
                )
            })?;
        site.conversation(&session_id)
            .map_err(|a| problem("conversation", a))?
            .state = state;
    }
    Ok(site)
}

fn object(value: Value) -> Map<String, Value> {
    match value {
        Value::Object(map) => map,
        _ => Map::new(),
    }
}
