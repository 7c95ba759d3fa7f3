//! `crisp-gateway demo`: the whole gateway on the embedded database, against the stateful
//! sandbox, with one realistic flow run through the gateway so the first thing a user sees is
//! real data coming back.

use std::net::SocketAddr;

use serde_json::{Value, json};

use crate::app::App;
use crate::app::config::Config;
use crate::sandbox::SandboxConfig;
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
        crate::sandbox::spawn(sandbox_listener, SandboxConfig::default())?;
    config.upstream = sandbox_url.clone();

    let store = super::open(&config).await?;
    let workspace = match store.find_workspace(WORKSPACE).await {
        Ok(w) => w,
        Err(StoreError::NotFound) => create_workspace(&store, WORKSPACE).await?,
        Err(e) => return Err(e.into()),
    };
    let accounts = store.list_accounts(Some(&workspace.workspace_id)).await?;
    if !accounts.iter().any(|a| a.label == ACCOUNT) {
        let vault = Vault::new(&crate::app::master_key(&config, store.engine())?);
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
    // The console needs an admin token; the demo makes one so a first look takes no setup.
    let console = match config.admin_listen {
        Some(admin) => Some((
            admin,
            crate::admin::tokens::create_admin_token(&store, Some("demo".into()))
                .await
                .map_err(|e| e.to_string())?
                .0,
        )),
        None => None,
    };

    let listener = super::serve::bind(config.listen).await?;
    let addr = listener.local_addr()?;
    let app = App::new(config, store)?;
    let server = tokio::spawn(super::serve::serve_on(app, listener));
    eprintln!(
        "\ncrisp-gateway demo on http://{addr} (Crisp sandbox at {sandbox_url})\n\
         workspace `{WORKSPACE}`, account `{ACCOUNT}`, new key {} (shown once)\n",
        key.id()
    );
    let flow = Flow {
        http: reqwest::Client::new(),
        base: format!("http://{addr}"),
        key: key.reveal().to_owned(),
    };
    match flow.run().await {
        Ok(()) => {}
        Err(problem) => eprintln!("the demo flow failed: {problem}"),
    }
    eprintln!(
        "Try it:\n\n  curl -s -X POST http://{addr}/api/crisp/list/conversations \\\n    \
         -H 'Authorization: Bearer {}' \\\n    -H 'Content-Type: application/json' -d '{{\"query\":{{\"per_page\":20}}}}'\n\n\
         All actions: curl -s http://{addr}/api/crisp/_endpoints\n",
        key.reveal()
    );
    if let Some((admin, token)) = &console {
        eprintln!(
            "The console: http://{admin}/admin/ — sign in with the admin token {} (shown once)\n",
            token.reveal()
        );
    }
    eprintln!("Stop with Ctrl-C.\n");
    server
        .await
        .map_err(|e| format!("the server task failed: {e}"))?
}

/// The everyday flow, sent through the gateway itself: create a conversation, send a message,
/// list the messages. Each step prints the curl line that does the same.
struct Flow {
    http: reqwest::Client,
    base: String,
    key: String,
}

impl Flow {
    async fn run(&self) -> Result<(), String> {
        eprintln!("A first conversation, through the gateway:\n");
        let created = self.call("create/new/conversation", json!({})).await?;
        let session = created["session_id"]
            .as_str()
            .ok_or("create/new/conversation returned no session_id")?
            .to_owned();
        eprintln!("    → session_id {session}\n");
        let sent = self
            .call(
                "send/message/in/conversation",
                json!({
                    "sessionID": session,
                    "body": { "type": "text", "from": "operator", "origin": "chat", "content": "Hello from crisp-gateway!" }
                }),
            )
            .await?;
        eprintln!("    → fingerprint {}\n", sent["fingerprint"]);
        let messages = self
            .call(
                "get/messages/in/conversation",
                json!({ "sessionID": session }),
            )
            .await?;
        let count = messages.as_array().map_or(0, Vec::len);
        let first = messages[0]["content"].as_str().unwrap_or("");
        eprintln!("    → {count} message(s): \"{first}\"\n");
        Ok(())
    }

    async fn call(&self, action: &str, body: Value) -> Result<Value, String> {
        eprintln!(
            "  curl -s -X POST {}/api/crisp/{action} \\\n    -H 'Authorization: Bearer {}' \\\n    \
             -H 'Content-Type: application/json' -d '{body}'",
            self.base, self.key
        );
        let bytes = self
            .http
            .post(format!("{}/api/crisp/{action}", self.base))
            .bearer_auth(&self.key)
            .header(reqwest::header::CONTENT_TYPE, "application/json")
            .body(body.to_string())
            .send()
            .await
            .map_err(|e| format!("{action}: {e}"))?
            .bytes()
            .await
            .map_err(|e| format!("{action}: {e}"))?;
        let reply: Value = serde_json::from_slice(&bytes).map_err(|e| format!("{action}: {e}"))?;
        if reply["ok"] != true {
            return Err(format!("{action}: {reply}"));
        }
        Ok(reply["result"].clone())
    }
}
