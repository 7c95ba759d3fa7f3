//! The new Knowledge Base: a content tree per (locale, content type) whose entries are created,
//! moved, given content and metadata, listed and deleted, and a history with one change per
//! write that can be read and cancelled.
//!
//! A tree path names an entry by its slugs from the root (`getting-started/install`); through the
//! gateway it is one percent-encoded path segment. Creating a path creates its missing parents,
//! deleting one deletes what is below it.

use std::collections::BTreeMap;

use axum::http::StatusCode;
use serde_json::{Map, Value, json};

use super::Call;
use super::answer::{Answer, Checked, Kind, merge, object, required_str, typed};
use super::state::{Website, page, uuid};

/// The content types of Crisp's current Knowledge Base (`HelpdeskContentType` in its Node client).
const CONTENT_TYPES: [&str; 4] = ["articles", "guides", "references", "news"];

/// Which tree: a locale and a content type.
type TreeKey = (String, String);

#[derive(Debug, Clone, Default)]
pub struct Knowledge {
    /// Entries by tree path; a `BTreeMap` keeps a parent before what is below it.
    trees: BTreeMap<TreeKey, BTreeMap<String, Entry>>,
    /// Oldest first.
    changes: Vec<Change>,
}

#[derive(Debug, Clone, PartialEq)]
struct Entry {
    entity_id: String,
    /// `HelpdeskTreeMetadata`: format, title, description, state, author, and what callers add.
    metadata: Map<String, Value>,
    content: String,
    /// Order among its siblings.
    position: i64,
    updated_at: i64,
}

#[derive(Debug, Clone)]
struct Change {
    change_id: String,
    message: String,
    tree: TreeKey,
    created_at: i64,
    /// Every entry it touched, as it was before and after; cancelling puts `before` back.
    files: Vec<Touched>,
}

#[derive(Debug, Clone)]
struct Touched {
    path: String,
    before: Option<Entry>,
    after: Option<Entry>,
}

/// Answers the Knowledge Base tree actions; `None` for any other action.
pub fn handle(call: &Call, site: &mut Website) -> Option<Checked<Answer>> {
    let answer = match call.slug {
        "create/helpdesk/tree/path" => create(call, site),
        "resolve/helpdesk/tree/path" => read(call, site, |tree, path, entry, _| {
            entry_view(tree, path, entry)
        }),
        "update/helpdesk/tree/path" => update_path(call, site),
        "delete/helpdesk/tree/path" => delete(call, site),
        "resolve/helpdesk/tree/content" => read(
            call,
            site,
            |_, _, entry, _| json!({ "content": entry.content }),
        ),
        "save/helpdesk/tree/content" => save_content(call, site),
        "resolve/helpdesk/tree/metadata" => read(call, site, |_, _, entry, _| {
            Value::Object(entry.metadata.clone())
        }),
        "update/helpdesk/tree/metadata" => update_metadata(call, site),
        "resolve/helpdesk/tree/page" => read(
            call,
            site,
            |_, path, entry, url| json!({ "title": title(entry), "url": format!("{url}{path}/") }),
        ),
        "list/helpdesk/tree" => list_tree(call, site),
        "list/helpdesk/pages" => list_pages(call, site),
        "resolve/helpdesk/page/entity" => page_entity(call, site),
        "list/helpdesk/history/changes" => list_changes(call, site),
        "resolve/helpdesk/history/change" => find_change(site, call.param("changeID"))
            .map(|c| Answer::ok("resolved", change_view(site, c))),
        "cancel/helpdesk/history/change" => cancel(call, site),
        // The other routes of the current Knowledge Base (feedback, refresh, import, export)
        // keep no state, but name a content type Crisp must know.
        _ if !call.param("contentType").is_empty() => return tree_key(call).err().map(Err),
        _ => return None,
    };
    Some(answer)
}

/// The tree the call names; a content type Crisp does not know is refused.
fn tree_key(call: &Call) -> Checked<TreeKey> {
    let content_type = call.param("contentType");
    if !CONTENT_TYPES.contains(&content_type) {
        return Err(Answer::invalid(
            "data.content_type should be equal to one of the allowed values",
        ));
    }
    Ok((call.param("locale").to_owned(), content_type.to_owned()))
}

/// A tree path without leading, trailing or doubled slashes; `.` and `..` are refused.
fn normalize(raw: &str) -> Checked<String> {
    let slugs: Vec<&str> = raw.split('/').filter(|s| !s.trim().is_empty()).collect();
    if slugs.is_empty() || slugs.iter().any(|s| matches!(*s, "." | "..")) {
        return Err(Answer::invalid("data.path should be a tree path"));
    }
    Ok(slugs.join("/"))
}

fn parent(path: &str) -> Option<&str> {
    path.rsplit_once('/').map(|(parent, _)| parent)
}

fn slug(path: &str) -> &str {
    path.rsplit_once('/').map_or(path, |(_, slug)| slug)
}

fn is_below(path: &str, ancestor: &str) -> bool {
    path.strip_prefix(ancestor)
        .is_some_and(|rest| rest.starts_with('/'))
}

fn title(entry: &Entry) -> &str {
    entry
        .metadata
        .get("title")
        .and_then(Value::as_str)
        .unwrap_or("")
}

/// The public URL of a tree's pages, up to the path.
fn url_base(site: &Website, (locale, content_type): &TreeKey) -> String {
    format!(
        "https://help.{}/{locale}/{content_type}/",
        site.domain().trim().trim_end_matches('/')
    )
}

/// `getting-started` → `Getting started`.
fn title_of_slug(slug: &str) -> String {
    let words = slug.replace(['-', '_'], " ");
    let mut chars = words.chars();
    chars.next().map_or_else(String::new, |first| {
        first.to_uppercase().chain(chars).collect()
    })
}

/// An entry as `HelpdeskTreeEntry` reads it, with what is below it.
fn entry_view(tree: &BTreeMap<String, Entry>, path: &str, entry: &Entry) -> Value {
    let state = entry
        .metadata
        .get("state")
        .cloned()
        .unwrap_or_else(|| json!({}));
    let children: Vec<Value> = children(tree, Some(path))
        .into_iter()
        .map(|(p, e)| entry_view(tree, p, e))
        .collect();
    json!({
        "type": "page",
        "slug": slug(path),
        "path": path,
        "title": title(entry),
        "state": state,
        "children": children,
    })
}

/// The entries right below `parent` (the roots for `None`), in their order.
fn children<'a>(
    tree: &'a BTreeMap<String, Entry>,
    under: Option<&str>,
) -> Vec<(&'a String, &'a Entry)> {
    let mut found: Vec<(&String, &Entry)> =
        tree.iter().filter(|(p, _)| parent(p) == under).collect();
    found.sort_by_key(|(p, e)| (e.position, p.as_str()));
    found
}

fn read(
    call: &Call,
    site: &mut Website,
    view: impl FnOnce(&BTreeMap<String, Entry>, &str, &Entry, &str) -> Value,
) -> Checked<Answer> {
    let key = tree_key(call)?;
    let path = normalize(call.param("path"))?;
    let url = url_base(site, &key);
    let (tree, entry) = site
        .knowledge
        .trees
        .get(&key)
        .and_then(|t| t.get(&path).map(|e| (t, e)))
        .ok_or_else(|| Answer::not_found("helpdesk tree path"))?;
    Ok(Answer::ok("resolved", view(tree, &path, entry, &url)))
}

/// The operator who writes, in the sandbox: the website's first operator.
fn author(site: &Website) -> (String, String, String) {
    let details = site
        .operators
        .iter()
        .find(|o| o["type"] == "operator")
        .map(|o| &o["details"]);
    let text = |field: &str| {
        details
            .and_then(|d| d[field].as_str())
            .unwrap_or("")
            .to_owned()
    };
    let name = format!("{} {}", text("first_name"), text("last_name"));
    (text("user_id"), text("email"), name.trim().to_owned())
}

fn new_entry(site: &mut Website, path: &str, siblings: usize, published: bool) -> Entry {
    let (user_id, _, _) = author(site);
    let now = site.tick();
    Entry {
        entity_id: uuid(),
        metadata: Map::from_iter([
            ("format".to_owned(), json!("markdown")),
            ("title".to_owned(), json!(title_of_slug(slug(path)))),
            ("description".to_owned(), json!("")),
            (
                "state".to_owned(),
                json!({ "published": published, "hidden": false, "featured": false }),
            ),
            ("author".to_owned(), json!({ "user_id": user_id })),
        ]),
        content: String::new(),
        position: i64::try_from(siblings).unwrap_or(i64::MAX),
        updated_at: now,
    }
}

/// Applies `edit` to the tree and records the change it made (nothing when it made none).
fn write(
    site: &mut Website,
    key: &TreeKey,
    message: String,
    edit: impl FnOnce(&mut Website, &mut BTreeMap<String, Entry>) -> Checked<()>,
) -> Checked<()> {
    let mut tree = site.knowledge.trees.get(key).cloned().unwrap_or_default();
    let before = tree.clone();
    edit(site, &mut tree)?;
    let mut files = Vec::new();
    for path in before
        .keys()
        .chain(tree.keys().filter(|p| !before.contains_key(*p)))
    {
        let (old, new) = (before.get(path), tree.get(path));
        if old != new {
            files.push(Touched {
                path: path.clone(),
                before: old.cloned(),
                after: new.cloned(),
            });
        }
    }
    let created_at = site.tick();
    site.knowledge.trees.insert(key.clone(), tree);
    if !files.is_empty() {
        site.knowledge.changes.push(Change {
            change_id: uuid(),
            message,
            tree: key.clone(),
            created_at,
            files,
        });
    }
    Ok(())
}

/// Adds `path` and any missing parent to `tree`.
fn add_path(
    site: &mut Website,
    tree: &mut BTreeMap<String, Entry>,
    path: &str,
    published: bool,
) -> Checked<()> {
    if tree.contains_key(path) {
        return Err(path_exists());
    }
    fill_path(site, tree, path, published);
    Ok(())
}

/// Crisp does not document this case; a conflict is what a caller can act on.
fn path_exists() -> Answer {
    Answer::error(
        StatusCode::CONFLICT,
        "path_exists",
        "this helpdesk tree path already exists",
    )
}

/// Makes every entry from the root down to `path` that is not there yet.
fn fill_path(site: &mut Website, tree: &mut BTreeMap<String, Entry>, path: &str, published: bool) {
    let mut prefix = String::new();
    for segment in path.split('/') {
        if !prefix.is_empty() {
            prefix.push('/');
        }
        prefix.push_str(segment);
        if !tree.contains_key(&prefix) {
            let under = parent(&prefix);
            let siblings = tree.keys().filter(|p| parent(p) == under).count();
            let entry = new_entry(site, &prefix, siblings, published);
            tree.insert(prefix.clone(), entry);
        }
    }
}

/// The tree every sandbox website starts with: English articles, three pages, one change.
pub fn seed(site: &mut Website) {
    let key = ("en".to_owned(), "articles".to_owned());
    let pages = [
        (
            "getting-started",
            "Getting started",
            "# Getting started\n\nWelcome to the sandbox Knowledge Base.\n",
        ),
        (
            "getting-started/install",
            "Install the chatbox",
            "# Install the chatbox\n\nPaste the snippet before `</body>`.\n",
        ),
        (
            "faq",
            "Frequently asked questions",
            "# FAQ\n\nAsk us anything in the chatbox.\n",
        ),
    ];
    // An empty tree cannot refuse these paths.
    let _ = write(site, &key, "Add the first pages".into(), |site, tree| {
        for (path, title, content) in pages {
            add_path(site, tree, path, true)?;
            if let Some(entry) = tree.get_mut(path) {
                entry.metadata.insert("title".into(), json!(title));
                entry.content = content.to_owned();
            }
        }
        Ok(())
    });
}

fn create(call: &Call, site: &mut Website) -> Checked<Answer> {
    let key = tree_key(call)?;
    let path = normalize(call.param("path"))?;
    write(site, &key, format!("Create {path}"), |site, tree| {
        add_path(site, tree, &path, false)
    })?;
    Ok(Answer::ok("added", json!({})))
}

/// The tree of `key`, refusing a path that is not in it.
fn existing(site: &Website, key: &TreeKey, path: &str) -> Checked<()> {
    site.knowledge
        .trees
        .get(key)
        .filter(|t| t.contains_key(path))
        .map(|_| ())
        .ok_or_else(|| Answer::not_found("helpdesk tree path"))
}

/// `HelpdeskTreePathUpdate`: `path.to` moves the entry (and what is below it), `position`
/// reorders it among its siblings. Crisp does not list the `action` words; any is taken.
fn update_path(call: &Call, site: &mut Website) -> Checked<Answer> {
    let key = tree_key(call)?;
    let path = normalize(call.param("path"))?;
    let body = object(&call.body)?;
    let action = required_str(body, "action")?.to_owned();
    typed(body, "path", Kind::Object)?;
    let target = match body.get("path") {
        None => None,
        Some(to) => Some(normalize(required_str(object(to)?, "to").map_err(
            |_| Answer::invalid("data.path should have required property 'to'"),
        )?)?),
    };
    let position = match body.get("position") {
        None => None,
        Some(p) => Some(
            p.as_i64()
                .ok_or_else(|| Answer::invalid("data.position should be integer"))?,
        ),
    };
    existing(site, &key, &path)?;
    let now = site.tick();
    write(site, &key, format!("{action} {path}"), |site, tree| {
        let mut at = path.clone();
        if let Some(to) = target.filter(|to| *to != path) {
            if is_below(&to, &path) {
                return Err(Answer::invalid("data.path.to should not be below the path"));
            }
            if tree.contains_key(&to) {
                return Err(path_exists());
            }
            // The new parents first, so that the moved entry is listed under them.
            if let Some(under) = parent(&to) {
                fill_path(site, tree, under, false);
            }
            let moved: Vec<String> = tree
                .keys()
                .filter(|p| **p == path || is_below(p, &path))
                .cloned()
                .collect();
            for old in moved {
                if let Some(entry) = tree.remove(&old) {
                    tree.insert(format!("{to}{}", &old[path.len()..]), entry);
                }
            }
            at = to;
        }
        if let Some(entry) = tree.get_mut(&at) {
            if let Some(position) = position {
                entry.position = position;
            }
            entry.updated_at = now;
        }
        Ok(())
    })?;
    Ok(Answer::ok("updated", json!({})))
}

fn delete(call: &Call, site: &mut Website) -> Checked<Answer> {
    let key = tree_key(call)?;
    let path = normalize(call.param("path"))?;
    existing(site, &key, &path)?;
    write(site, &key, format!("Delete {path}"), |_, tree| {
        tree.retain(|p, _| *p != path && !is_below(p, &path));
        Ok(())
    })?;
    Ok(Answer::ok("deleted", json!({})))
}

fn save_content(call: &Call, site: &mut Website) -> Checked<Answer> {
    let key = tree_key(call)?;
    let path = normalize(call.param("path"))?;
    let content = required_str(object(&call.body)?, "content")?.to_owned();
    existing(site, &key, &path)?;
    let now = site.tick();
    write(site, &key, format!("Edit {path}"), |_, tree| {
        if let Some(entry) = tree.get_mut(&path) {
            entry.content = content;
            entry.updated_at = now;
        }
        Ok(())
    })?;
    Ok(Answer::ok("updated", json!({})))
}

fn update_metadata(call: &Call, site: &mut Website) -> Checked<Answer> {
    let key = tree_key(call)?;
    let path = normalize(call.param("path"))?;
    let body = object(&call.body)?.clone();
    for field in ["format", "title", "description", "color", "image"] {
        typed(&body, field, Kind::String)?;
    }
    typed(&body, "state", Kind::Object)?;
    typed(&body, "author", Kind::Object)?;
    existing(site, &key, &path)?;
    let now = site.tick();
    write(
        site,
        &key,
        format!("Edit the metadata of {path}"),
        |_, tree| {
            if let Some(entry) = tree.get_mut(&path) {
                merge(&mut entry.metadata, &body);
                entry.updated_at = now;
            }
            Ok(())
        },
    )?;
    Ok(Answer::ok("updated", json!({})))
}

/// `HelpdeskTreeListQuery`: the entries right below `sub_path` (the roots by default), each
/// with what is below it; with `search_title`, every entry whose title holds the text.
fn list_tree(call: &Call, site: &mut Website) -> Checked<Answer> {
    let key = tree_key(call)?;
    let (number, per_page) = (call.page()?, call.per_page()?);
    let empty = BTreeMap::new();
    let tree = site.knowledge.trees.get(&key).unwrap_or(&empty);
    let search = call
        .query
        .get("search_title")
        .map(|s| s.trim().to_lowercase())
        .filter(|s| !s.is_empty());
    let sub_path = match call.query.get("sub_path").map(|s| s.trim_matches('/')) {
        None | Some("") => None,
        Some(raw) => Some(normalize(raw)?),
    };
    let found: Vec<(&String, &Entry)> = match &search {
        Some(text) => tree
            .iter()
            .filter(|(p, e)| {
                sub_path.as_deref().is_none_or(|s| is_below(p, s))
                    && title(e).to_lowercase().contains(text.as_str())
            })
            .collect(),
        None => children(tree, sub_path.as_deref()),
    };
    // `filter_date_start`/`filter_date_end` are taken and not applied: the sandbox's trees are
    // young enough for every entry to fall in any window a test would ask for.
    let items: Vec<Value> = page(&found, number, per_page)
        .iter()
        .map(|(p, e)| entry_view(tree, p, e))
        .collect();
    Ok(Answer::ok("resolved", Value::Array(items)))
}

fn page_view(url: &str, path: &str, entry: &Entry) -> Value {
    json!({
        "entity_id": entry.entity_id,
        "title": title(entry),
        "tree_path": path,
        "url": format!("{url}{path}/"),
    })
}

/// The published pages of a tree, in tree order.
fn list_pages(call: &Call, site: &mut Website) -> Checked<Answer> {
    let key = tree_key(call)?;
    let (number, per_page) = (call.page()?, call.per_page()?);
    let url = url_base(site, &key);
    let published: Vec<Value> = site
        .knowledge
        .trees
        .get(&key)
        .into_iter()
        .flatten()
        .filter(|(_, e)| {
            e.metadata
                .get("state")
                .and_then(|s| s.get("published"))
                .and_then(Value::as_bool)
                .unwrap_or(false)
        })
        .map(|(p, e)| page_view(&url, p, e))
        .collect();
    Ok(Answer::ok(
        "resolved",
        Value::Array(page(&published, number, per_page).to_vec()),
    ))
}

fn page_entity(call: &Call, site: &mut Website) -> Checked<Answer> {
    let key = tree_key(call)?;
    let url = url_base(site, &key);
    let entity = call.param("entityID");
    site.knowledge
        .trees
        .get(&key)
        .into_iter()
        .flatten()
        .find(|(_, e)| e.entity_id == entity)
        .map(|(p, e)| Answer::ok("resolved", page_view(&url, p, e)))
        .ok_or_else(|| Answer::not_found("helpdesk page"))
}

fn find_change(site: &Website, change_id: &str) -> Checked<Change> {
    site.knowledge
        .changes
        .iter()
        .find(|c| c.change_id == change_id)
        .cloned()
        .ok_or_else(|| Answer::not_found("helpdesk change"))
}

/// Lines one side has and the other lacks, counted as a multiset (close enough to a diff's
/// insertions and deletions for a sandbox).
fn lines_missing(from: &str, to: &str) -> i64 {
    let mut pool: Vec<&str> = to.lines().collect();
    let mut missing = 0;
    for line in from.lines() {
        match pool.iter().position(|l| *l == line) {
            Some(i) => {
                pool.swap_remove(i);
            }
            None => missing += 1,
        }
    }
    missing
}

fn change_view(site: &Website, change: Change) -> Value {
    let (_, email, name) = author(site);
    let (mut insertions, mut deletions) = (0, 0);
    let files: Vec<Value> = change
        .files
        .iter()
        .map(|f| {
            let old = f.before.as_ref().map_or("", |e| e.content.as_str());
            let new = f.after.as_ref().map_or("", |e| e.content.as_str());
            insertions += lines_missing(new, old);
            deletions += lines_missing(old, new);
            let (kind, shown) = match (&f.before, &f.after) {
                (None, Some(after)) => ("added", after),
                (Some(before), None) => ("deleted", before),
                (Some(_), Some(after)) => ("modified", after),
                (None, None) => return Value::Null,
            };
            json!({
                "change": kind,
                "path": f.path,
                "metadata": shown.metadata,
                "content": shown.content,
            })
        })
        .filter(|f| !f.is_null())
        .collect();
    json!({
        "change_id": change.change_id,
        "message": change.message,
        "locale": change.tree.0,
        "content_type": change.tree.1,
        "author": { "email": email, "name": name },
        "edits": { "insertions": insertions, "deletions": deletions },
        "created_at": change.created_at,
        "files": files,
    })
}

/// `HelpdeskChangeListQuery`: newest first, filtered by locale, content type and tree path.
fn list_changes(call: &Call, site: &mut Website) -> Checked<Answer> {
    let (number, per_page) = (call.page()?, call.per_page()?);
    let wanted = |name: &str| call.query.get(name).filter(|v| !v.is_empty());
    let path = wanted("filter_tree_path").map(|p| p.trim_matches('/').to_owned());
    let kept: Vec<Change> = site
        .knowledge
        .changes
        .iter()
        .rev()
        .filter(|c| wanted("filter_locale").is_none_or(|l| *l == c.tree.0))
        .filter(|c| wanted("filter_type").is_none_or(|t| *t == c.tree.1))
        .filter(|c| {
            path.as_deref()
                .is_none_or(|p| c.files.iter().any(|f| f.path == p || is_below(&f.path, p)))
        })
        .cloned()
        .collect();
    let items: Vec<Value> = page(&kept, number, per_page)
        .iter()
        .map(|c| change_view(site, c.clone()))
        .collect();
    Ok(Answer::ok("resolved", Value::Array(items)))
}

/// Undoes a change: each entry it touched goes back to what it was before, and the change
/// leaves the history. An entry changed again since goes back too (the sandbox does not merge).
/// `action` is required, as Crisp's client always sends it; its words are not documented.
fn cancel(call: &Call, site: &mut Website) -> Checked<Answer> {
    required_str(object(&call.body)?, "action")?;
    let change = find_change(site, call.param("changeID"))?;
    let tree = site.knowledge.trees.entry(change.tree.clone()).or_default();
    for file in change.files.iter().rev() {
        match &file.before {
            Some(entry) => {
                tree.insert(file.path.clone(), entry.clone());
            }
            None => {
                tree.remove(&file.path);
            }
        }
    }
    site.knowledge
        .changes
        .retain(|c| c.change_id != change.change_id);
    Ok(Answer::ok("deleted", json!({})))
}
