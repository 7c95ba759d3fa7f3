//! Workspaces: listed and created.

use super::*;

#[derive(Debug, Serialize, ToSchema)]
pub struct WorkspaceView {
    pub id: String,
    pub name: String,
    /// RFC 3339.
    pub created_at: String,
}

impl From<&crate::store::Workspace> for WorkspaceView {
    fn from(w: &crate::store::Workspace) -> Self {
        Self {
            id: w.workspace_id.to_string(),
            name: w.name.clone(),
            created_at: crate::kernel::clock::format(w.created_at),
        }
    }
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewWorkspace {
    /// 1 to 64 characters without spaces, such as `acme`.
    pub name: String,
}

/// The workspaces, by name.
#[utoipa::path(get, path = "/admin/v1/workspaces", tag = "workspaces",
    responses((status = 200, description = "`{\"workspaces\": [WorkspaceView]}`")))]
pub(super) async fn list_workspaces(
    State(state): State<ConsoleState>,
) -> Result<Response, ApiError> {
    let workspaces = state.app.store.list_workspaces().await?;
    let views: Vec<WorkspaceView> = workspaces.iter().map(WorkspaceView::from).collect();
    Ok(ok(json!({ "workspaces": views })))
}

/// Creates a workspace. Accepts `Idempotency-Key`.
#[utoipa::path(post, path = "/admin/v1/workspaces", tag = "workspaces", request_body = NewWorkspace,
    params(("Idempotency-Key" = Option<String>, Header, description = "Makes a retry safe: a repeat returns the first answer.")),
    responses((status = 201, description = "Created.", body = WorkspaceView), (status = 409, description = "The name is taken.")))]
pub(super) async fn create_workspace(
    State(state): State<ConsoleState>,
    Extension(principal): Extension<AdminPrincipal>,
    headers: HeaderMap,
    raw: Bytes,
) -> Result<Response, ApiError> {
    let request: NewWorkspace = body(&raw)?;
    idempotency::run(&state, &principal, &headers, "workspaces", &raw, || async {
        let workspace = cases::create_workspace(&state.app.store, &request.name).await?;
        audit_change(
            &state,
            &principal,
            &headers,
            "workspace/create",
            Some(&workspace.workspace_id),
            &workspace.name,
        );
        let view = to_value(&WorkspaceView::from(&workspace));
        Ok(idempotency::Answer::same(StatusCode::CREATED, view))
    })
    .await
}
