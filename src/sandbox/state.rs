//! The sandbox's memory: one `Website` per website id, each holding its conversations,
//! messages, people, operators, settings, teams and Knowledge Base. Everything is lost when the
//! process stops.

use std::collections::HashMap;
use std::sync::Mutex;

use serde_json::{Map, Value, json};

use super::answer::{Answer, Checked};
use super::knowledge::Knowledge;
use super::teams::Team;

#[derive(Debug, Clone)]
pub struct Conversation {
    pub session_id: String,
    pub state: &'static str,
    pub meta: Map<String, Value>,
    pub assigned: Option<String>,
    pub blocked: bool,
    pub unread_operator: u64,
    pub unread_visitor: u64,
    pub created_at: i64,
    pub updated_at: i64,
    /// Crisp message objects, oldest first.
    pub messages: Vec<Value>,
}

#[derive(Debug, Clone)]
pub struct Profile {
    pub people_id: String,
    /// The people card (`email`, `person`, `company`, `segments`, `notepad`, `active`).
    pub card: Map<String, Value>,
    pub data: Map<String, Value>,
    pub events: Vec<Value>,
    pub created_at: i64,
    pub updated_at: i64,
}

#[derive(Debug, Clone)]
pub struct Website {
    pub website_id: String,
    /// The settings object as `GET …/settings` shows it (name and domain live here too).
    pub settings: Map<String, Value>,
    pub conversations: Vec<Conversation>,
    pub people: Vec<Profile>,
    /// `{type: "operator"|"invitation", details: {…}}` entries, as the operator list shows them.
    pub operators: Vec<Value>,
    /// Oldest first, as the team list shows them.
    pub teams: Vec<Team>,
    /// The new Knowledge Base: a content tree per locale and content type, and its history.
    pub knowledge: Knowledge,
    last_timestamp: i64,
}

impl Website {
    pub fn new(website_id: &str, name: &str, domain: &str) -> Self {
        let mut site = Self {
            website_id: website_id.to_owned(),
            settings: default_settings(website_id, name, domain),
            conversations: Vec::new(),
            people: Vec::new(),
            operators: Vec::new(),
            teams: Vec::new(),
            knowledge: Knowledge::default(),
            last_timestamp: 0,
        };
        let owner = site.add_operator("owner@sandbox.example", "Sandbox", "Owner", "owner");
        // Reads of teams and of the Knowledge Base work before anything was written.
        let mut team = Map::new();
        team.insert("name".into(), json!("Support"));
        team.insert("emoji".into(), json!("🎧"));
        team.insert("operators".into(), json!([owner]));
        super::teams::insert(&mut site, team);
        super::knowledge::seed(&mut site);
        site
    }

    /// A millisecond timestamp that never repeats within the website, so that
    /// `timestamp_before` cursors are exact even for messages sent in the same millisecond.
    pub fn tick(&mut self) -> i64 {
        self.last_timestamp = now_ms().max(self.last_timestamp + 1);
        self.last_timestamp
    }

    pub fn add_operator(&mut self, email: &str, first: &str, last: &str, role: &str) -> String {
        let user_id = uuid();
        self.operators.push(json!({
            "type": "operator",
            "details": {
                "user_id": user_id,
                "email": email,
                "avatar": null,
                "first_name": first,
                "last_name": last,
                "role": role,
                "title": null,
                "availability": "offline",
                "has_token": false,
                "identifier": null,
                "key": null,
            }
        }));
        user_id
    }

    pub fn conversation(&mut self, session_id: &str) -> Checked<&mut Conversation> {
        self.conversations
            .iter_mut()
            .find(|c| c.session_id == session_id)
            .ok_or_else(|| Answer::not_found("conversation"))
    }

    /// Finds a profile by people id or by e-mail, as Crisp accepts both in the path.
    pub fn profile(&mut self, id_or_email: &str) -> Checked<&mut Profile> {
        self.people
            .iter_mut()
            .find(|p| {
                p.people_id == id_or_email
                    || p.card.get("email").and_then(Value::as_str) == Some(id_or_email)
            })
            .ok_or_else(|| Answer::not_found("people profile"))
    }

    pub fn name(&self) -> &str {
        self.settings
            .get("name")
            .and_then(Value::as_str)
            .unwrap_or("")
    }

    pub fn domain(&self) -> &str {
        self.settings
            .get("domain")
            .and_then(Value::as_str)
            .unwrap_or("")
    }
}

fn default_settings(website_id: &str, name: &str, domain: &str) -> Map<String, Value> {
    let settings = json!({
        "website_id": website_id,
        "name": name,
        "domain": domain,
        "logo": null,
        "audit": { "log": false },
        "contact": {},
        "inbox": { "lock_removal": false, "force_operator_token": false, "locale": "en" },
        "emails": { "rating": true, "transcript": true, "junk_filter": true },
        "chatbox": {
            "tile": "default",
            "wait_game": false,
            "website_logo": true,
            "last_operator_face": false,
            "ongoing_operator_face": true,
            "activity_metrics": true,
            "operator_privacy": false,
            "availability_tooltip": true,
            "hide_vacation": false,
            "hide_on_away": false,
            "hide_on_mobile": false,
            "position_reverse": false,
            "email_visitors": true,
            "phone_visitors": false,
            "force_identify": false,
            "ignore_privacy": false,
            "visitor_compose": false,
            "file_transfer": true,
            "audio_record": true,
            "color_theme": "default",
            "text_theme": "default",
            "welcome_message": "default",
            "locale": "",
            "allowed_pages": [],
            "blocked_pages": [],
            "blocked_countries": [],
            "blocked_locales": [],
            "blocked_ips": []
        }
    });
    match settings {
        Value::Object(map) => map,
        _ => Map::new(),
    }
}

/// All websites, behind one lock: handlers are short and never wait while holding it.
#[derive(Debug, Default)]
pub struct Store {
    websites: Mutex<HashMap<String, Website>>,
}

impl Store {
    pub fn with(websites: Vec<Website>) -> Self {
        Self {
            websites: Mutex::new(
                websites
                    .into_iter()
                    .map(|w| (w.website_id.clone(), w))
                    .collect(),
            ),
        }
    }

    /// Runs `f` on a website; `create` makes an unknown website spring into being first.
    pub fn with_website<T>(
        &self,
        website_id: &str,
        create: bool,
        f: impl FnOnce(&mut Website) -> T,
    ) -> Option<T> {
        // A panic in a handler poisons the lock; the data is still usable for a test double.
        let mut websites = self
            .websites
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if create && !websites.contains_key(website_id) {
            websites.insert(
                website_id.to_owned(),
                Website::new(website_id, "Sandbox website", "sandbox.example"),
            );
        }
        websites.get_mut(website_id).map(f)
    }

    pub fn contains(&self, website_id: &str) -> bool {
        self.websites
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .contains_key(website_id)
    }
}

pub fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

/// A random (version 4) UUID, the form Crisp uses for people, operators and sessions.
pub fn uuid() -> String {
    let mut b = crate::secret::random_bytes::<16>();
    b[6] = (b[6] & 0x0f) | 0x40;
    b[8] = (b[8] & 0x3f) | 0x80;
    let hex: String = b.iter().map(|x| format!("{x:02x}")).collect();
    format!(
        "{}-{}-{}-{}-{}",
        &hex[..8],
        &hex[8..12],
        &hex[12..16],
        &hex[16..20],
        &hex[20..]
    )
}

/// The slice of `items` a 1-based page of `per_page` covers (an empty page past the end, which
/// is how a client learns the list is over).
pub fn page<T>(items: &[T], page: usize, per_page: usize) -> &[T] {
    let start = (page - 1).saturating_mul(per_page).min(items.len());
    let end = start.saturating_add(per_page).min(items.len());
    &items[start..end]
}
