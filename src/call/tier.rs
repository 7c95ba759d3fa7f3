//! Token tiers: a call the account's tier cannot make is refused before Crisp (where Crisp
//! documents the route's tiers), and Crisp's own refusal for the tier is told as the same
//! `tier_not_allowed`, never as a credentials problem.

use crate::accounts::{Account, Tier};
use crate::catalog::Action;
use crate::error::{ApiError, Reason};
use crate::forward::UpstreamError;

/// Refuses, before Crisp, a call whose documented tiers leave out the account's.
pub fn check(action: &Action, account: &Account) -> Result<(), ApiError> {
    if action.allows(account.tier) {
        return Ok(());
    }
    Err(refused(
        account,
        format!(
            "`{}` needs a token of tier {} (Crisp's REST reference), and account `{}` has tier `{}`",
            action.slug,
            listed(&action.tiers),
            account.label,
            account.tier
        ),
        &action.tiers,
    ))
}

/// A failed Crisp call in the caller's terms: Crisp's refusal of the route to the token's tier
/// (`restricted_route_tier`, or a 401/403 for credentials Crisp accepted earlier in this
/// process) becomes `tier_not_allowed`; anything else keeps its own meaning.
pub fn answer(action: &Action, account: &Account, error: UpstreamError) -> ApiError {
    let said = match &error {
        UpstreamError::TierRestricted { status, .. } => {
            format!("HTTP {status} restricted_route_tier")
        }
        UpstreamError::Unauthorized { .. } if account.proven.get() => {
            "HTTP 401, for credentials it accepted earlier".to_owned()
        }
        UpstreamError::Forbidden { detail, .. } if account.proven.get() => {
            format!("HTTP 403 {detail}, for credentials it accepted earlier")
        }
        _ => return error.into(),
    };
    let others: Vec<Tier> = if action.tiers.is_empty() {
        Tier::ALL
            .into_iter()
            .filter(|t| *t != account.tier)
            .collect()
    } else {
        action.tiers.clone()
    };
    let needs = if action.tiers.is_empty() {
        "Crisp documents no tiers for this route".to_owned()
    } else {
        format!("Crisp documents it for tier {}", listed(&action.tiers))
    };
    let scope = if matches!(error, UpstreamError::Forbidden { .. }) && account.tier == Tier::Plugin
    {
        " (or the plugin token lacks a scope this route needs)"
    } else {
        ""
    };
    // A 401/403 without Crisp's reason may also be a token revoked in Crisp since it worked.
    let revoked = if matches!(error, UpstreamError::TierRestricted { .. }) {
        ""
    } else {
        " (if the token was revoked or replaced in Crisp since, store the new one with \
         `crisp-gateway account update <label> --workspace <workspace> --key-stdin`)"
    };
    tracing::debug!(cause = %error, "crisp refused the route to the account's tier");
    refused(
        account,
        format!(
            "Crisp refused `{}` to account `{}` of tier `{}` ({said}): the route is not open to \
             that tier{scope}{revoked}; {needs}",
            action.slug, account.label, account.tier
        ),
        &others,
    )
}

fn refused(account: &Account, what: String, tiers: &[Tier]) -> ApiError {
    let tier = tiers.first().copied().unwrap_or(Tier::User);
    ApiError::Forbidden {
        reason: Reason::TierNotAllowed,
        message: format!(
            "{what}. Link an account of tier {} (`crisp-gateway account add --workspace <workspace> \
             --label <label> --tier {tier} --identifier <token id> --website-id <website id>`, its \
             key in CRISP_KEY or on standard input with --key-stdin) and name it in `account`{}.",
            listed(tiers),
            if account.tier == Tier::User || !tiers.contains(&Tier::User) {
                String::new()
            } else {
                "; a `user` token is an operator's own keypair (Crisp's Node client reads it from \
                 the `user_session` of app.crisp.chat)"
                    .to_owned()
            }
        ),
    }
}

/// `user`, or `user` or `plugin`, for messages.
fn listed(tiers: &[Tier]) -> String {
    let names: Vec<String> = tiers.iter().map(|t| format!("`{t}`")).collect();
    match names.as_slice() {
        [] => "`user`, `website` or `plugin`".to_owned(),
        [one] => one.clone(),
        [init @ .., last] => format!("{} or {last}", init.join(", ")),
    }
}
