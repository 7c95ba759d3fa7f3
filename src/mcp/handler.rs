//! The MCP server handler: lists the selected tools a key may see, and runs tool calls through
//! `call::execute`, so MCP and REST share validation, scopes and every rule added there.

use std::sync::Arc;

use axum::http::request::Parts;
use rmcp::model::{
    CallToolRequestParams, CallToolResponse, CallToolResult, ContentBlock, Implementation,
    ListToolsResult, PaginatedRequestParams, ServerCapabilities, ServerConfig,
};
use rmcp::service::RequestContext;
use rmcp::{ErrorData, RoleServer, ServerHandler};
use serde_json::{Map, Value};

use crate::app::AppState;
use crate::auth::Principal;
use crate::call;
use crate::catalog::Action;
use crate::error::{ApiError, Reason};
use crate::kernel::request_id::{REQUEST_ID, Started};

use super::meta;
use super::toolsets::{Selection, Target};

const INSTRUCTIONS: &str = "Tools of crisp-gateway: the Crisp REST API v1 (conversations, messages, people, \
operators, helpdesk, campaigns, …) behind one workspace key. With the default toolset, find an action with \
crisp_search_actions, read its fields with crisp_describe_action, then run it with crisp_call_action; \
crisp_list_accounts shows the connected Crisp accounts (pass `account` to choose one). A tool answers with \
Crisp's data as JSON; a refused or failed call is a tool error whose text says what to fix.";

/// One handler per MCP request (stateless mode); everything shared lives in `App`.
#[derive(Clone)]
pub struct Handler {
    app: AppState,
}

impl Handler {
    pub fn new(app: AppState) -> Self {
        Self { app }
    }
}

/// What the HTTP layers in front of rmcp established about the request.
struct Caller {
    principal: Arc<Principal>,
    selection: Selection,
    request_id: String,
    started: std::time::Instant,
}

fn caller(ctx: &RequestContext<RoleServer>) -> Result<Caller, ErrorData> {
    let parts = ctx.extensions.get::<Parts>();
    let principal = parts.and_then(|p| p.extensions.get::<Arc<Principal>>());
    let selection = parts.and_then(|p| p.extensions.get::<Selection>());
    match (principal, selection) {
        (Some(principal), Some(selection)) => Ok(Caller {
            principal: principal.clone(),
            selection: selection.clone(),
            request_id: parts
                .and_then(|p| p.headers.get(REQUEST_ID))
                .and_then(|v| v.to_str().ok())
                .unwrap_or_default()
                .to_owned(),
            started: parts
                .and_then(|p| p.extensions.get::<Started>())
                .map_or_else(std::time::Instant::now, |s| s.0),
        }),
        // The auth and toolset layers always run first; reaching this is a wiring bug.
        _ => Err(ErrorData::internal_error(
            "the MCP request reached the handler without a key or toolset",
            None,
        )),
    }
}

impl ServerHandler for Handler {
    fn get_info(&self) -> ServerConfig {
        ServerConfig::new(ServerCapabilities::builder().enable_tools().build())
            .with_server_info(Implementation::new(
                "crisp-gateway",
                env!("CARGO_PKG_VERSION"),
            ))
            .with_instructions(INSTRUCTIONS)
    }

    async fn list_tools(
        &self,
        _request: Option<PaginatedRequestParams>,
        ctx: RequestContext<RoleServer>,
    ) -> Result<ListToolsResult, ErrorData> {
        let caller = caller(&ctx)?;
        let scope = &caller.principal.scope;
        let tools = caller
            .selection
            .entries()
            .iter()
            .filter(|e| e.target.action().is_none_or(|a| scope.permits(a)))
            .map(|e| e.tool.clone())
            .collect();
        Ok(ListToolsResult::with_all_items(tools))
    }

    async fn call_tool(
        &self,
        request: CallToolRequestParams,
        ctx: RequestContext<RoleServer>,
    ) -> Result<CallToolResponse, ErrorData> {
        let caller = caller(&ctx)?;
        let Some(entry) = caller.selection.find(&request.name) else {
            return Err(ErrorData::invalid_params(
                format!(
                    "Unknown tool `{}` in this toolset; list the tools with tools/list (or use /mcp/all).",
                    request.name
                ),
                None,
            ));
        };
        let arguments = request.arguments.unwrap_or_default();
        let principal = &caller.principal;
        let scope = &principal.scope;
        let (tool, outcome) = match entry.target {
            Target::Search => (
                entry.tool.name.to_string(),
                meta::search(scope, &arguments).map(CallToolResult::structured),
            ),
            Target::Describe => (
                entry.tool.name.to_string(),
                meta::describe(scope, &arguments).map(CallToolResult::structured),
            ),
            Target::Call => match call_target(arguments) {
                Ok((action, arguments)) => (
                    action.tool.clone(),
                    self.run(&caller, action, arguments).await,
                ),
                Err(e) => (entry.tool.name.to_string(), Err(e)),
            },
            Target::Action(action) => (
                action.tool.clone(),
                self.run(&caller, action, arguments).await,
            ),
            Target::Essential(essential, action) => {
                let outcome = match essential.translate(action, arguments) {
                    Ok(arguments) => self.run(&caller, action, arguments).await,
                    Err(e) => Err(e),
                };
                (essential.name.to_owned(), outcome)
            }
        };
        Ok(outcome
            .unwrap_or_else(|e| tool_error(&e, &tool, &caller.request_id))
            .into())
    }
}

impl Handler {
    /// Runs a catalog action exactly as `POST /api/crisp/<action>` does.
    async fn run(
        &self,
        caller: &Caller,
        action: &Action,
        arguments: Map<String, Value>,
    ) -> Result<CallToolResult, ApiError> {
        let args = call::args::from_object(action, arguments).inspect_err(|e| {
            call::count_refused(&self.app.services(), &caller.principal, action, e);
        })?;
        let (envelope, mut noted) = crate::telemetry::with_call_info(call::execute(
            &self.app.services(),
            &caller.principal,
            action,
            args,
            &caller.request_id,
            caller.started,
        ))
        .await;
        noted.action = Some(action.slug);
        crate::telemetry::hand_off(&caller.request_id, noted);
        let envelope = envelope?;
        // The gateway checks the shape of Crisp's envelope, not every byte of `data` (see
        // `forward::scan`); if Crisp ever sent a broken `data`, this parse is where it shows.
        let envelope: Value = serde_json::from_slice(&envelope.to_bytes()).map_err(|_| {
            ApiError::from(crate::forward::UpstreamError::InvalidResponse { status: 200 })
        })?;
        // The text is Crisp's `data`, as the REST `result`; the structured content is the whole
        // REST envelope (an object, as MCP requires, even when `data` is a list).
        let mut envelope = envelope;
        let note = fit(&mut envelope, self.app.config.mcp_max_result);
        let mut text = envelope
            .get("result")
            .map_or_else(String::new, Value::to_string);
        if let Some(note) = note {
            text.push_str("\n\n");
            text.push_str(&note);
        }
        let mut result = CallToolResult::success(vec![ContentBlock::text(text)]);
        result.structured_content = Some(envelope);
        Ok(result)
    }
}

/// Cuts a result longer than `limit` bytes at an item boundary — the list itself, or the
/// longest list inside an object — and says in the envelope (`truncated`) and in words what
/// was cut and how to get the rest: an agent's context is the scarce thing here.
fn fit(envelope: &mut Value, limit: usize) -> Option<String> {
    let result = envelope.get_mut("result")?;
    let size = serde_json::to_vec(result).map_or(0, |v| v.len());
    if size <= limit {
        return None;
    }
    let (cut, field) = match result {
        Value::Array(_) => (call::shape::cut_to(result, limit)?, None),
        Value::Object(object) => {
            let (name, list) = object
                .iter_mut()
                .filter(|(_, v)| v.is_array())
                .max_by_key(|(_, v)| serde_json::to_vec(v).map_or(0, |b| b.len()))?;
            let list_size = serde_json::to_vec(list).map_or(0, |v| v.len());
            let room = limit.saturating_sub(size - list_size);
            (call::shape::cut_to(list, room)?, Some(name.clone()))
        }
        _ => return None,
    };
    let what = field.map_or_else(|| "the list".to_owned(), |f| format!("`{f}`"));
    let note = format!(
        "Cut: {what} keeps {} of {} items, as the whole result ({} bytes) is over this gateway's \
         MCP limit of {limit} bytes. Ask for less with `fields` (only the paths you need), or \
         page with `pageNumber` (and `per_page` in `query`) to read the rest.",
        cut.kept, cut.total, cut.bytes
    );
    envelope["truncated"] = serde_json::json!({
        "kept": cut.kept,
        "total": cut.total,
        "bytes": cut.bytes,
        "limit": limit,
        "note": note,
    });
    Some(note)
}

/// `crisp_call_action`'s `action` and `arguments`.
fn call_target(
    mut arguments: Map<String, Value>,
) -> Result<(&'static Action, Map<String, Value>), ApiError> {
    let action = meta::target(&arguments, "crisp_call_action")?;
    let inner = match arguments.remove("arguments") {
        None | Some(Value::Null) => Map::new(),
        Some(Value::Object(map)) => map,
        // Agents sometimes send the object JSON-encoded; accept it as `body` is accepted.
        Some(Value::String(text)) if text.trim().is_empty() => Map::new(),
        Some(Value::String(text)) => match serde_json::from_str(&text) {
            Ok(Value::Object(map)) => map,
            _ => return Err(arguments_not_object(action)),
        },
        Some(_) => return Err(arguments_not_object(action)),
    };
    if let Some(stray) = arguments.keys().find(|k| k.as_str() != "action") {
        return Err(ApiError::bad_request(
            Reason::UnknownField,
            format!(
                "`{stray}` is not a field of `crisp_call_action`: put the action's fields inside `arguments`, e.g. {{\"action\":\"{}\",\"arguments\":{{\"{stray}\":…}}}}.",
                action.slug
            ),
        ));
    }
    Ok((action, inner))
}

fn arguments_not_object(action: &Action) -> ApiError {
    ApiError::bad_request(
        Reason::InvalidField,
        format!(
            "`arguments` of `crisp_call_action` must be an object of `{}`'s fields.",
            action.slug
        ),
    )
}

/// A tool-level error: the text is the REST error's message, the structured content the REST
/// error envelope. The HTTP answer is a 200, so the cause of a 5xx is logged here, once.
fn tool_error(error: &ApiError, tool: &str, request_id: &str) -> CallToolResult {
    if error.status().is_server_error() {
        tracing::error!(status = error.status().as_u16(), reason = error.reason(), %request_id, tool, error = %error, cause = ?std::error::Error::source(error).map(ToString::to_string), "MCP tool call failed");
    } else {
        tracing::debug!(status = error.status().as_u16(), reason = error.reason(), %request_id, tool, "MCP tool call refused");
    }
    let mut result = CallToolResult::error(vec![ContentBlock::text(error.message())]);
    result.structured_content = Some(error.to_body(Some(tool), request_id));
    result
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::fit;

    #[test]
    fn long_results_are_cut_at_an_item_with_a_note() {
        let items: Vec<_> = (0..200)
            .map(|i| json!({"session_id": format!("session_{i}"), "pad": "x".repeat(100)}))
            .collect();
        let mut envelope = json!({"ok": true, "tool": "crisp_list_conversations", "result": items});
        let note = fit(&mut envelope, 4096).expect("cut");
        assert!(
            note.contains("of 200 items") && note.contains("`fields`"),
            "{note}"
        );
        let kept = envelope["result"].as_array().map_or(0, Vec::len);
        assert_eq!(envelope["truncated"]["kept"], kept);
        assert!(kept > 0 && kept < 200);

        let mut object = json!({"ok": true, "result": {"count": 2, "conversations": (0..200).map(|i| json!({"n": i, "pad": "y".repeat(50)})).collect::<Vec<_>>()}});
        let note = fit(&mut object, 2048).expect("cut inside");
        assert!(note.contains("`conversations`"), "{note}");
        assert_eq!(object["result"]["count"], 2);

        let mut small = json!({"ok": true, "result": [1, 2, 3]});
        assert_eq!(fit(&mut small, 4096), None);
        assert!(small.get("truncated").is_none());
    }
}
