//! `crisp-gateway demo`: the whole gateway on the embedded database, against the sandbox.

use std::net::SocketAddr;

use crate::app::App;
use crate::config::Config;
use crate::secret::{CrispKey, Vault};
use crate::store::StoreError;

use super::CliResult;
use crate::admin::{NewAccount, add_account, create_key, create_workspace};

const WORKSPACE: &str = "demo";
const ACCOUNT: &str = "sandbox";

pub async fn demo(mut config: Config, listen: Option<SocketAddr>) -> CliResult {
    if let Some(listen) = listen {
        config.listen = listen;
    }
    let sandbox_listener = tokio::net::TcpListener::bind(("127.0.0.1", 0))
        .await
        .map_err(|e| format!("cannot start the sandbox: {e}"))?;
    let (sandbox_url, _sandbox) =
        crate::sandbox::spawn(sandbox_listener).map_err(|e| e.to_string())?;
    config.upstream = sandbox_url.clone();

    let store = super::open(&config).await?;
    let workspace = match store.find_workspace(WORKSPACE).await {
        Ok(w) => w,
        Err(StoreError::NotFound) => create_workspace(&store, WORKSPACE).await?,
        Err(e) => return Err(e.to_string()),
    };
    let accounts = store
        .list_accounts(Some(&workspace.workspace_id))
        .await
        .map_err(|e| e.to_string())?;
    if !accounts.iter().any(|a| a.label == ACCOUNT) {
        let vault = Vault::new(
            &crate::app::master_key(&config, store.engine()).map_err(|e| e.to_string())?,
        );
        add_account(
            &store,
            &vault,
            NewAccount {
                workspace_id: &workspace.workspace_id,
                label: ACCOUNT,
                identifier: "demo-identifier",
                website_id: "8c842203-7ed8-4e29-a608-7cf78a7d2fcc",
                tier: crate::accounts::Tier::Website,
                is_default: true,
                key: &CrispKey::new("demo-key"),
            },
        )
        .await?;
    }
    let key = create_key(&store, &workspace.workspace_id, Some("demo".into())).await?;

    let addr = config.listen;
    let listener = super::serve::bind(addr).await?;
    let app = App::new(config, store).map_err(|e| e.to_string())?;
    eprintln!(
        "\ncrisp-gateway demo on http://{addr} (Crisp sandbox at {sandbox_url})\n\
         workspace `{WORKSPACE}`, account `{ACCOUNT}`, new key {} (shown once)\n\n\
         Try it:\n\n  curl -s -X POST http://{addr}/api/crisp/list/conversations \\\n    \
         -H 'Authorization: Bearer {}' \\\n    -H 'Content-Type: application/json' -d '{{\"query\":{{\"per_page\":20}}}}'\n\n\
         All actions: curl -s http://{addr}/api/crisp/_endpoints\nStop with Ctrl-C.\n",
        key.id(),
        key.reveal()
    );
    super::serve::serve_on(app, listener).await
}
