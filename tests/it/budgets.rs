//! Budgets shared across replicas: two gateways on one Postgres database call Crisp, together,
//! at one account's rate, and pick up a new rate set on the account while running.

use std::time::Duration;

use crisp_gateway::store::AccountUpdate;

use crate::helpers::{Engine, TestApp, engines};

/// Calls the fake Crisp got while `apps` each kept `per_app` callers busy for `run`, after a
/// warm-up in which the replicas' leases settle.
async fn crisp_calls(apps: &[&TestApp], per_app: usize, warm_up: Duration, run: Duration) -> usize {
    let stop = tokio::time::Instant::now() + warm_up + run;
    let mut callers = Vec::new();
    for app in apps {
        for _ in 0..per_app {
            let (http, url, key) = (
                app.http.clone(),
                app.url("/api/crisp/list/conversations"),
                app.key.clone(),
            );
            callers.push(tokio::spawn(async move {
                while tokio::time::Instant::now() < stop {
                    let _ = http
                        .post(&url)
                        .bearer_auth(&key)
                        .header("content-type", "application/json")
                        .body("{}")
                        .send()
                        .await;
                }
            }));
        }
    }
    tokio::time::sleep(warm_up).await;
    apps[0].crisp.take_received();
    tokio::time::sleep(run).await;
    let calls = apps[0].crisp.take_received().len();
    for caller in callers {
        let _ = caller.await;
    }
    calls
}

#[tokio::test]
async fn two_replicas_share_one_account_budget() {
    if !engines().contains(&Engine::Postgres) {
        return;
    }
    let first = TestApp::spawn_with(Engine::Postgres, |config| {
        config.account_rate_limit = 10.0;
        config.account_burst = 1.0;
        config.key_rate_limit = 0.0;
    })
    .await;
    let second = first.replica().await;

    // Both replicas busy: together they call Crisp at the account's rate, not twice it.
    let run = Duration::from_secs(2);
    let calls = crisp_calls(&[&first, &second], 4, Duration::from_millis(1500), run).await;
    // Each replica may hold a token of burst; a whole budget each would be about 40.
    assert!((14..=23).contains(&calls), "{calls} calls in 2 s at 10/s");

    // Both hold a live lease on the account's budget, adding up to no more than it.
    let account = &first.store.list_accounts(None).await.expect("accounts")[0];
    let leases = first
        .store
        .budget_leases(
            &format!("account:{}", account.crisp_account_id),
            crisp_gateway::kernel::clock::now_millis(),
        )
        .await
        .expect("leases");
    assert_eq!(leases.len(), 2, "{leases:?}");
    let held: f64 = leases.iter().map(|l| l.rate).sum();
    assert!(held <= 10.0 + 1e-9, "{leases:?}");

    // A rate set on the account reaches both running replicas through the change log.
    first
        .store
        .update_account(
            &first.workspace_id,
            "main",
            &AccountUpdate {
                rate_limit: Some(Some(4.0)),
                ..AccountUpdate::default()
            },
        )
        .await
        .expect("update");
    let calls = crisp_calls(&[&first, &second], 4, Duration::from_millis(1500), run).await;
    assert!((5..=11).contains(&calls), "{calls} calls in 2 s at 4/s");

    // The busy replica beside an idle one gets all but the idle one's trickle (1/s).
    let calls = crisp_calls(&[&second], 4, Duration::from_millis(1500), run).await;
    assert!(
        (5..=9).contains(&calls),
        "{calls} calls in 2 s at 4/s, one busy replica"
    );
}
