//! Finding actions from people's words: one ranking for `crisp_search_actions`,
//! `_endpoints?q=` and every "did you mean".
//!
//! Each action is indexed once from its slug, title, domain, body and query field names and
//! notes, weighted in that order. A query's words are stemmed, looked up in a small vocabulary
//! of the words people use for Crisp things (`customer` → people, `archive` → the conversation's
//! state), and near misses are forgiven. A query that does not ask to destroy anything never sees
//! a destructive action first, and the old Knowledge Base's actions come after the current ones.

use std::collections::HashMap;
use std::sync::LazyLock;

use super::{Action, CATALOG, Shape, Ty};

/// The vocabulary: a word people use → the catalog's words for it.
const SYNONYMS: &[(&str, &[&str])] = &[
    ("customer", &["people", "profile"]),
    ("client", &["people", "profile"]),
    ("contact", &["people", "profile"]),
    ("lead", &["people", "profile"]),
    ("crm", &["people", "profile"]),
    ("person", &["people", "profile"]),
    ("user", &["people", "visitor"]),
    ("visitor", &["visitor", "people"]),
    ("reply", &["send", "message"]),
    ("answer", &["send", "message"]),
    ("respond", &["send", "message"]),
    ("write", &["send", "save"]),
    ("say", &["send", "message"]),
    ("note", &["send", "message"]),
    ("internal", &["note", "send", "message"]),
    ("create", &["create", "add", "new"]),
    ("add", &["add", "new", "create"]),
    ("new", &["new", "add", "create"]),
    ("make", &["create", "add", "new"]),
    ("send", &["send", "dispatch"]),
    ("statistic", &["statistic", "analytic"]),
    ("msg", &["message"]),
    ("chat", &["conversation", "message"]),
    ("thread", &["conversation"]),
    ("ticket", &["conversation"]),
    ("history", &["messages", "history"]),
    ("transcript", &["transcript"]),
    ("archive", &["state", "resolve", "change"]),
    ("close", &["state", "resolve", "change"]),
    ("resolve", &["state", "resolve", "change"]),
    ("solve", &["state", "resolve", "change"]),
    ("done", &["event", "page"]),
    ("reopen", &["state", "unresolve", "change"]),
    ("open", &["state", "pending", "unresolved", "resolved"]),
    ("waiting", &["state", "pending", "unresolved"]),
    ("tag", &["segment", "meta"]),
    ("label", &["segment", "meta"]),
    ("typing", &["compose"]),
    ("type", &["compose"]),
    ("rate", &["feedback", "rating"]),
    ("rating", &["feedback", "rating"]),
    ("satisfaction", &["feedback", "rating"]),
    ("review", &["feedback", "spam", "decision"]),
    ("csat", &["feedback", "rating"]),
    ("online", &["visitor", "availability", "active"]),
    ("available", &["availability"]),
    ("availability", &["availability"]),
    ("now", &["active", "availability"]),
    ("agent", &["operator"]),
    ("teammate", &["operator"]),
    ("member", &["operator", "team"]),
    ("staff", &["operator"]),
    ("owner", &["operator", "membership", "role"]),
    ("admin", &["operator", "membership", "role"]),
    ("role", &["membership", "role"]),
    ("group", &["team"]),
    ("handling", &["routing", "assign", "participant"]),
    ("assign", &["routing", "assign"]),
    ("assignee", &["routing", "assign"]),
    ("route", &["routing"]),
    ("transfer", &["routing", "inbox"]),
    ("move", &["inbox"]),
    ("seen", &["read"]),
    ("edit", &["update"]),
    ("change", &["update", "change"]),
    ("modify", &["update"]),
    ("set", &["update", "save"]),
    ("rename", &["update"]),
    ("erase", &["remove", "delete"]),
    ("delete", &["remove", "delete"]),
    ("remove", &["remove", "delete", "unlink"]),
    ("kick", &["unlink", "remove"]),
    ("spammer", &["block", "spam"]),
    ("ban", &["block"]),
    ("mute", &["block"]),
    ("uploaded", &["file"]),
    ("upload", &["bucket", "url", "file"]),
    ("attachment", &["file", "bucket"]),
    ("image", &["file", "bucket"]),
    ("gif", &["animation", "media"]),
    ("emoji", &["animation"]),
    ("browse", &["page", "browsing"]),
    ("browsed", &["page", "browsing"]),
    ("visited", &["page", "browsing"]),
    ("newsletter", &["campaign"]),
    ("mailing", &["campaign"]),
    ("blast", &["campaign"]),
    ("launch", &["dispatch"]),
    ("start", &["create", "initiate", "new"]),
    ("begin", &["create", "initiate", "new"]),
    ("perform", &["statistic"]),
    ("performance", &["statistic", "analytic"]),
    ("opens", &["statistic"]),
    ("clicks", &["statistic"]),
    ("stats", &["statistic", "analytic"]),
    ("metric", &["statistic", "analytic"]),
    ("report", &["analytic", "report"]),
    ("received", &["recipient"]),
    ("recipients", &["recipient"]),
    (
        "article",
        &["helpdesk", "tree", "content", "page", "article"],
    ),
    ("help", &["helpdesk"]),
    ("faq", &["helpdesk"]),
    ("knowledge", &["helpdesk"]),
    ("kb", &["helpdesk"]),
    ("doc", &["helpdesk"]),
    ("center", &["helpdesk"]),
    ("undo", &["cancel", "history"]),
    ("revert", &["cancel", "history"]),
    ("domain", &["domain"]),
    ("color", &["setting", "chatbox"]),
    ("colour", &["setting", "chatbox"]),
    ("welcome", &["setting", "chatbox"]),
    ("chatbox", &["setting", "chatbox"]),
    ("widget", &["setting", "chatbox"]),
    ("config", &["setting"]),
    ("configuration", &["setting"]),
    ("remind", &["reminder", "schedule"]),
    ("follow", &["reminder", "schedule"]),
    ("later", &["reminder", "schedule"]),
    ("unsubscribe", &["subscription", "unsubscribe"]),
    ("optout", &["subscription"]),
    ("purchase", &["event"]),
    ("track", &["event"]),
    ("activity", &["event", "page"]),
    ("custom", &["data"]),
    ("attribute", &["data"]),
    ("field", &["data"]),
    ("how", &["count", "statistic"]),
    ("many", &["count", "statistic"]),
    ("number", &["count", "statistic"]),
    ("csv", &["import", "export"]),
    ("installed", &["subscription", "plugin"]),
    ("integration", &["plugin", "subscription"]),
    ("app", &["plugin"]),
    ("identity", &["verification", "verify"]),
    ("phone", &["call", "meta", "phone"]),
    ("call", &["call"]),
    ("accounts", &["account"]),
    ("inbox", &["inbox"]),
    ("queue", &["inbox"]),
    ("details", &["get", "meta"]),
    ("info", &["get", "meta"]),
    ("show", &["list", "get"]),
    ("find", &["list", "get", "search"]),
    ("search", &["list", "search"]),
    ("lookup", &["get", "list"]),
    ("fetch", &["get", "list"]),
    ("read", &["get", "read"]),
    ("see", &["get", "list"]),
    ("all", &["list"]),
    ("who", &["list", "participant"]),
    ("which", &["list"]),
    ("what", &["list", "get"]),
    ("email", &["email"]),
];

/// Words that carry no meaning for the search.
const STOPWORDS: &[&str] = &[
    "a", "an", "the", "to", "of", "for", "by", "in", "on", "at", "my", "our", "me", "i", "is",
    "are", "do", "does", "did", "with", "from", "and", "or", "this", "that", "these", "those",
    "it", "its", "be", "can", "we", "you", "your", "their", "they", "s", "like", "into", "as",
    "up", "want", "please", "some", "any", "right", "get", "using", "via", "about", "them", "has",
    "have", "on", "last", "month", "tomorrow", "whole",
];

/// Query words that mean the caller wants something destroyed.
const DESTROY: &[&str] = &[
    "remove",
    "delete",
    "erase",
    "destroy",
    "purge",
    "wipe",
    "drop",
    "unlink",
    "kick",
    "flush",
    "clear",
    "expunge",
    "abort",
    "cancel",
    "undo",
    "revert",
    "unsubscribe",
    "block",
    "ban",
    "spammer",
    "mute",
];

/// Query words that ask for a change rather than a look.
const CHANGE: &[&str] = &[
    "send", "reply", "answer", "respond", "create", "add", "new", "update", "edit", "change",
    "set", "save", "write", "invite", "assign", "move", "transfer", "mark", "tag", "label",
    "archive", "close", "resolve", "solve", "reopen", "start", "begin", "launch", "dispatch",
    "upload", "import", "export", "track", "store", "make", "leave", "ask", "request", "call",
    "verify", "publish", "rename", "modify", "schedule", "remind", "note", "say", "typing",
];

/// The slug's first word for actions that destroy or take away.
const DESTRUCTIVE_VERBS: &[&str] = &[
    "remove",
    "delete",
    "flush",
    "clear",
    "unlink",
    "unsubscribe",
    "abort",
    "cancel",
    "block",
];

struct Entry {
    /// (stemmed word, weight), the best weight per word.
    words: HashMap<String, f32>,
    destructive: bool,
}

struct Index {
    entries: Vec<Entry>,
    /// How many actions each word appears in, for its weight.
    frequency: HashMap<String, usize>,
    synonyms: HashMap<&'static str, &'static [&'static str]>,
}

static INDEX: LazyLock<Index> = LazyLock::new(build);

/// Lowercases and cuts a plural, a verb ending and a final `e`, the same way for the catalog
/// and the query, so `messages`, `message` and `messaging` meet.
pub fn stem(word: &str) -> String {
    let mut word = word.to_ascii_lowercase();
    let n = word.len();
    if n > 4 && word.ends_with("ies") {
        word.truncate(n - 3);
        word.push('y');
    } else if n > 4 && word.ends_with("sses") {
        word.truncate(n - 2);
    } else if n > 3
        && word.ends_with('s')
        && !word.ends_with("ss")
        && !word.ends_with("us")
        && !word.ends_with("is")
    {
        word.truncate(n - 1);
    }
    let n = word.len();
    if n > 5 && word.ends_with("ing") {
        word.truncate(n - 3);
    } else if n > 4 && word.ends_with("ed") {
        word.truncate(n - 2);
    }
    let n = word.len();
    if n > 3 && word.ends_with('e') {
        word.truncate(n - 1);
    }
    word
}

fn tokens(text: &str) -> impl Iterator<Item = String> + '_ {
    split_camel(text)
        .split(|c: char| !c.is_ascii_alphanumeric())
        .filter(|w| !w.is_empty())
        .map(str::to_owned)
        .collect::<Vec<_>>()
        .into_iter()
        .map(|w| stem(&w))
}

/// `MessageNew` → `Message New`, so a type's name counts as its words.
fn split_camel(text: &str) -> String {
    let mut out = String::with_capacity(text.len() + 8);
    let mut previous_lower = false;
    for c in text.chars() {
        if c.is_ascii_uppercase() && previous_lower {
            out.push(' ');
        }
        previous_lower = c.is_ascii_lowercase();
        out.push(c);
    }
    out
}

/// The top-level fields of a body, query or result type (of its items, for a list): (name,
/// meaning).
fn fields(ty: Option<&Ty>) -> Vec<(&'static str, &'static str)> {
    let types = CATALOG.types();
    match ty {
        Some(Ty::Array(item)) => fields(Some(item)),
        Some(Ty::Named(id)) => match &types.named(*id).shape {
            Shape::Fields(fields) => fields.iter().map(|f| (f.name, f.about)).collect(),
            _ => Vec::new(),
        },
        _ => Vec::new(),
    }
}

fn entry(action: &Action) -> Entry {
    let mut words: HashMap<String, f32> = HashMap::new();
    let mut add = |text: &str, weight: f32| {
        for word in tokens(text) {
            let slot = words.entry(word).or_insert(0.0);
            *slot = slot.max(weight);
        }
    };
    add(action.slug, 3.0);
    add(action.title, 2.5);
    add(action.domain, 1.5);
    for (name, about) in fields(action.body.as_ref())
        .into_iter()
        .chain(fields(action.query.as_ref()))
    {
        add(name, 1.0);
        add(about, 0.4);
    }
    // What a result holds is what people look it up by (`find a customer by email`); it counts
    // for less than what the caller sends.
    for (name, _) in fields(action.result.as_ref()) {
        add(name, 0.6);
    }
    if let Some(ty) = action.body.as_ref().or(action.result.as_ref()) {
        add(&CATALOG.types().describe(ty), 0.75);
    }
    if let Some(notes) = action.notes {
        add(notes, 0.5);
    }
    // The slug's words as written, so a plural asked for (`messages`) prefers the action that
    // answers many over the one that answers one.
    for word in action.slug.split('/') {
        words.insert(format!("={word}"), 3.15);
    }
    let first = action.slug.split('/').next().unwrap_or_default();
    let destructive = DESTRUCTIVE_VERBS.contains(&first)
        || action.slug.starts_with("batch/remove")
        || action.slug.starts_with("batch/block");
    Entry { words, destructive }
}

fn build() -> Index {
    let entries: Vec<Entry> = CATALOG.actions().iter().map(entry).collect();
    let mut frequency = HashMap::new();
    for entry in &entries {
        for word in entry.words.keys() {
            *frequency.entry(word.clone()).or_insert(0) += 1;
        }
    }
    Index {
        entries,
        frequency,
        synonyms: SYNONYMS.iter().copied().collect(),
    }
}

/// One word of a query with what it may stand for, each with how much it counts.
struct Term {
    alternatives: Vec<(String, f32)>,
}

fn terms(query: &str, index: &Index) -> Vec<Term> {
    // A slug-like query (`get/mesages`) means every word it has.
    let sentence = !query.contains('/');
    let mut out = Vec::new();
    for raw in query
        .split(|c: char| !c.is_ascii_alphanumeric())
        .filter(|w| !w.is_empty())
    {
        let lower = raw.to_ascii_lowercase();
        if sentence && STOPWORDS.contains(&lower.as_str()) {
            continue;
        }
        let word = stem(&lower);
        let mut alternatives = vec![(word.clone(), 1.0), (format!("={lower}"), 1.0)];
        for key in [lower.as_str(), word.as_str()] {
            if let Some(extra) = index.synonyms.get(key) {
                for w in *extra {
                    alternatives.push((stem(w), 0.8));
                    alternatives.push((format!("={w}"), 0.8));
                }
            }
        }
        // A near miss (`mesage`, `conversaton`) counts for a little less than the word.
        if word.len() >= 4 && !index.frequency.contains_key(&word) {
            // The closer the spelling, the more it counts.
            let near = |a: &str, b: &str| {
                if a.len() < 4 || a.len().abs_diff(b.len()) > 2 {
                    return None;
                }
                let distance = crate::kernel::text::edit_distance(a, b);
                (distance <= 1 + b.len() / 6).then_some(0.75 - 0.05 * distance as f32)
            };
            for known in index.frequency.keys() {
                let close = match known.strip_prefix('=') {
                    Some(surface) => near(surface, &lower),
                    None => near(known, &word),
                };
                if let Some(strength) = close {
                    alternatives.push((known.clone(), strength));
                }
            }
            // A short form of a word (`msg`, `conv`).
        } else if word.len() <= 4 && !index.frequency.contains_key(&word) {
            for known in index.frequency.keys() {
                if is_abbreviation(&word, known) {
                    alternatives.push((known.clone(), 0.6));
                }
            }
        }
        out.push(Term { alternatives });
    }
    out
}

/// `msg` for `message`, `conv` for `conversation`: the first letter, then the rest in order.
fn is_abbreviation(short: &str, word: &str) -> bool {
    if short.len() < 2 || word.len() <= short.len() || !word.starts_with(&short[..1]) {
        return false;
    }
    let mut rest = word.chars();
    short.chars().all(|c| rest.any(|w| w == c))
}

/// The actions that match a query, best first, each with its score.
pub fn rank(query: &str) -> Vec<(f32, &'static Action)> {
    let index = &*INDEX;
    let terms = terms(query, index);
    if terms.is_empty() {
        return Vec::new();
    }
    let lower = query.to_ascii_lowercase();
    let said = |list: &[&str]| {
        lower
            .split(|c: char| !c.is_ascii_alphanumeric())
            .any(|w| list.contains(&w) || list.contains(&stem(w).as_str()))
    };
    let wants_destruction = said(DESTROY);
    let wants_change = said(CHANGE) || wants_destruction;
    let total = CATALOG.actions().len() as f32;
    let mut scored: Vec<(f32, &'static Action)> = Vec::new();
    for (entry, action) in index.entries.iter().zip(CATALOG.actions()) {
        let mut score = 0.0f32;
        let mut matched = 0usize;
        for term in &terms {
            let best = term
                .alternatives
                .iter()
                .filter_map(|(word, strength)| {
                    let weight = entry.words.get(word)?;
                    // A word as written is as rare as its stem.
                    let df = match word.strip_prefix('=') {
                        Some(surface) => index.frequency.get(&stem(surface)),
                        None => index.frequency.get(word),
                    };
                    let df = *df.unwrap_or(&1) as f32;
                    Some(strength * weight * (1.0 + total / df).ln())
                })
                .fold(0.0f32, f32::max);
            if best > 0.0 {
                matched += 1;
                score += best;
            }
        }
        if matched == 0 {
            continue;
        }
        // Most words matched beats one word matched strongly.
        score *= 0.4 + 0.6 * (matched as f32 / terms.len() as f32);
        // Between equals, the action with fewer other words is the closer one.
        score /= 1.0 + 0.05 * action.slug.split('/').count() as f32;
        if entry.destructive && !wants_destruction {
            score *= 0.3;
        }
        if action.write && !wants_change {
            score *= 0.75;
        }
        if !action.write && wants_change {
            score *= 0.75;
        }
        if action.legacy {
            score *= 0.7;
        }
        scored.push((score, action));
    }
    scored.sort_by(|(a, x), (b, y)| b.total_cmp(a).then_with(|| x.slug.cmp(y.slug)));
    scored
}

/// The slugs closest to a name that matched none, best first, for "did you mean".
pub fn closest(wanted: &str, limit: usize) -> Vec<&'static str> {
    if wanted.len() > 128 {
        return Vec::new();
    }
    let ranked = rank(wanted);
    if !ranked.is_empty() {
        return ranked
            .into_iter()
            .take(limit)
            .map(|(_, a)| a.slug)
            .collect();
    }
    // Nothing shares a word: fall back on the spelling alone.
    let wanted = wanted.trim_matches('/').to_ascii_lowercase();
    let mut scored: Vec<(usize, &'static str)> = CATALOG
        .actions()
        .iter()
        .map(|a| (crate::kernel::text::edit_distance(&wanted, a.slug), a.slug))
        .collect();
    scored.sort();
    scored.into_iter().take(limit).map(|(_, s)| s).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn top(query: &str) -> Vec<&'static str> {
        rank(query)
            .into_iter()
            .take(5)
            .map(|(_, a)| a.slug)
            .collect()
    }

    #[test]
    fn stems_are_plain() {
        for (a, b) in [
            ("conversations", "conversation"),
            ("messages", "message"),
            ("categories", "category"),
            ("updated", "update"),
            ("typing", "type"),
        ] {
            assert_eq!(stem(a), stem(b), "{a} and {b}");
        }
        assert_eq!(stem("access"), "access");
        assert_eq!(stem("status"), "status");
    }

    #[derive(serde::Deserialize)]
    struct Tasks {
        task: Vec<Task>,
    }

    #[derive(serde::Deserialize)]
    struct Task {
        ask: String,
        accept: Vec<String>,
    }

    /// The evaluation set: tasks written from support work, each with the actions that do it.
    #[test]
    fn agents_find_an_accepted_action_in_the_top_five() {
        let tasks: Tasks = toml::from_str(include_str!("../../tests/data/agent-tasks.toml"))
            .expect("the evaluation set parses");
        assert!(tasks.task.len() >= 60, "at least 60 tasks");
        let mut misses = Vec::new();
        for task in &tasks.task {
            for slug in &task.accept {
                assert!(
                    CATALOG.get(slug).is_some(),
                    "{}: no action {slug}",
                    task.ask
                );
            }
            let found = top(&task.ask);
            if !found.iter().any(|s| task.accept.iter().any(|a| a == s)) {
                misses.push(format!("{:?} → {found:?}", task.ask));
            }
        }
        let share = 1.0 - misses.len() as f64 / tasks.task.len() as f64;
        println!(
            "{} of {} tasks found in the top five ({:.1} %); misses: {misses:?}",
            tasks.task.len() - misses.len(),
            tasks.task.len(),
            share * 100.0
        );
        assert!(
            share >= 0.95,
            "{:.1} % found; misses:\n{}",
            share * 100.0,
            misses.join("\n")
        );
    }

    #[test]
    fn near_misses_and_short_forms_find_the_action() {
        assert_eq!(top("send/msg")[0], "send/message/in/conversation");
        assert_eq!(top("list/conversation")[0], "list/conversations");
        assert_eq!(top("conversations/list")[0], "list/conversations");
        assert_eq!(closest("get/mesages", 1), ["get/messages/in/conversation"]);
    }

    #[test]
    fn what_a_result_holds_finds_the_action_that_answers_it() {
        assert_eq!(top("search people by email")[0], "list/people/profiles");
        assert_eq!(top("find a customer by email")[0], "get/people/profile");
    }

    #[test]
    fn a_look_never_ranks_a_destructive_action_first() {
        for query in [
            "search people by email",
            "people",
            "conversations",
            "operators",
        ] {
            let first = rank(query)[0].1;
            assert!(
                !INDEX.entries[first.index].destructive,
                "{query}: {}",
                first.slug
            );
        }
    }
}
