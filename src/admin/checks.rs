//! Account checks: one cheap authenticated Crisp call per account, and its answer told in
//! plain words (wrong key, wrong tier, plugin not installed, unknown website), for
//! `account test` and `doctor`.

use std::collections::BTreeMap;
use std::fmt;

use crate::accounts::{Account, Tier};
use crate::catalog::CATALOG;
use crate::forward::{CrispClient, UpstreamError, UpstreamRequest};

/// The catalog action an account check calls: reading the website is cheap and needs only the
/// website id. Crisp documents it for the user and plugin tiers only, so a website-tier account
/// reads the website's settings instead ([`FALLBACK_PROBE_ACTION`]).
pub const PROBE_ACTION: &str = "get/website";

/// The probe for a tier [`PROBE_ACTION`] is not documented for: open to every tier.
pub const FALLBACK_PROBE_ACTION: &str = "get/website/settings";

/// What one check found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    Works,
    /// Crisp knows the token but does not open the probe's route to its tier
    /// (`restricted_route_tier`): the credentials work, the website id went unchecked.
    ProbeRestricted,
    /// Crisp refused the pair with every tier.
    WrongKey,
    /// Crisp refused the pair with the stored tier but accepted it with this one.
    WrongTier {
        works_with: Tier,
    },
    /// A Marketplace token whose plugin is not installed on the website.
    NotSubscribed,
    UnknownWebsite,
    Forbidden(String),
    RateLimited,
    Unreachable(String),
    Other(String),
}

impl Verdict {
    pub fn works(&self) -> bool {
        matches!(self, Self::Works | Self::ProbeRestricted)
    }
}

/// A verdict about one account, ready to print.
pub struct Report<'a> {
    pub account: &'a Account,
    pub verdict: Verdict,
}

impl fmt::Display for Report<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.verdict_text(f)?;
        write!(f, "\n  {}", tier_reach(self.account.tier))
    }
}

impl Report<'_> {
    fn verdict_text(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let a = self.account;
        let readd = format!(
            "crisp-gateway account remove {} --workspace WORKSPACE, then account add … --label {}",
            a.label, a.label
        );
        match &self.verdict {
            Verdict::Works => write!(
                f,
                "the identifier/key pair, the tier `{}` and the website id `{}` work",
                a.tier, a.website_id
            ),
            Verdict::ProbeRestricted => write!(
                f,
                "Crisp knows the identifier/key pair, but does not open `{PROBE_ACTION}` to tier `{}` \
                 (restricted_route_tier), so the website id `{}` went unchecked",
                a.tier, a.website_id
            ),
            Verdict::WrongKey => write!(
                f,
                "Crisp refused the identifier/key pair (identifier `{}`) with every tier: the key is \
                 wrong, revoked or expired.\n  Fix: make a new token in Crisp and re-link it: {readd}",
                a.identifier
            ),
            Verdict::WrongTier { works_with } => write!(
                f,
                "the key works, but with tier `{works_with}`, not `{}`.\n  Fix: re-link the account \
                 with --tier {works_with}: {readd}",
                a.tier
            ),
            Verdict::NotSubscribed => write!(
                f,
                "the key and tier work, but the plugin is not installed on website `{}`.\n  Fix: \
                 install the plugin on that website (Crisp Marketplace), or link the right website id",
                a.website_id
            ),
            Verdict::UnknownWebsite => write!(
                f,
                "the key and tier work, but Crisp knows no website `{}`.\n  Fix: copy the website id \
                 from Crisp (Settings → Website settings) and re-link: {readd}",
                a.website_id
            ),
            Verdict::Forbidden(detail) => write!(
                f,
                "Crisp forbade the call on website `{}` ({detail}): the token may not use this \
                 website or lacks a scope.\n  Fix: use a token made for this website, or add the scope",
                a.website_id
            ),
            Verdict::RateLimited => write!(
                f,
                "Crisp is rate-limiting this account, so nothing could be checked.\n  Fix: wait a \
                 minute and run the check again"
            ),
            Verdict::Unreachable(detail) => write!(
                f,
                "{detail}.\n  Fix: check CRISP_GATEWAY_UPSTREAM and the network path to Crisp"
            ),
            Verdict::Other(detail) => write!(f, "{detail}"),
        }
    }
}

/// What an account of this tier may call, from the catalog's documented tiers: the domains
/// with an action open to it, and, by domain, the actions Crisp documents for other tiers only.
pub fn tier_reach(tier: Tier) -> String {
    let routed = || CATALOG.actions().iter().filter(|a| a.route.is_some());
    let mut opens: Vec<&str> = routed()
        .filter(|a| a.allows(tier))
        .map(|a| a.domain)
        .collect();
    opens.sort_unstable();
    opens.dedup();
    let mut closed: BTreeMap<(&str, String), Vec<&str>> = BTreeMap::new();
    for action in routed().filter(|a| !a.allows(tier)) {
        let needs: Vec<&str> = action.tiers.iter().map(|t| t.as_str()).collect();
        closed
            .entry((action.domain, needs.join(" or ")))
            .or_default()
            .push(action.slug);
    }
    let mut text = format!("tier `{tier}` opens: {}", opens.join(", "));
    if closed.is_empty() {
        text.push_str(" (every action)");
    } else {
        let refused: Vec<String> = closed
            .iter()
            .map(|((domain, needs), slugs)| {
                format!("{domain}: {} (tier {needs})", slugs.join(", "))
            })
            .collect();
        text.push_str(&format!(
            "; not open to it, as Crisp documents: {}",
            refused.join("; ")
        ));
    }
    text
}

fn probe(account: &Account) -> Option<UpstreamRequest> {
    let action = CATALOG
        .get(PROBE_ACTION)
        .filter(|a| a.allows(account.tier))
        .or_else(|| CATALOG.get(FALLBACK_PROBE_ACTION))?;
    let route = action.route.as_ref()?;
    Some(UpstreamRequest {
        method: route.method,
        path: route.path.render(|_| &account.website_id),
        query: Vec::new(),
        body: None,
    })
}

/// Checks one account with one call; only when Crisp refuses the credentials does it try the
/// other tiers, to tell a wrong key from a wrong tier.
pub async fn test_account(client: &CrispClient, account: &Account) -> Verdict {
    let Some(request) = probe(account) else {
        return Verdict::Other(format!("the catalog has no `{PROBE_ACTION}` action"));
    };
    match client.probe(account, &request, "account-test").await {
        Ok(_) => Verdict::Works,
        Err(UpstreamError::Unauthorized { .. }) => {
            for tier in [Tier::Website, Tier::Plugin, Tier::User] {
                if tier == account.tier {
                    continue;
                }
                let mut other = account.clone();
                other.tier = tier;
                // A success with another tier proves that tier, not the account as stored.
                other.proven = Default::default();
                match client.probe(&other, &request, "account-test").await {
                    Err(UpstreamError::Unauthorized { .. }) => {}
                    // Anything past authentication means the pair is valid for this tier.
                    _ => return Verdict::WrongTier { works_with: tier },
                }
            }
            Verdict::WrongKey
        }
        Err(UpstreamError::TierRestricted { .. }) => Verdict::ProbeRestricted,
        Err(UpstreamError::Rejected { reason, .. }) if reason == "not_subscribed" => {
            Verdict::NotSubscribed
        }
        Err(UpstreamError::Rejected { status: 404, .. }) => Verdict::UnknownWebsite,
        Err(UpstreamError::Forbidden { detail, .. }) => Verdict::Forbidden(detail),
        Err(UpstreamError::RateLimited { .. }) => Verdict::RateLimited,
        Err(e @ (UpstreamError::Timeout | UpstreamError::Unreachable(_))) => Verdict::Unreachable(
            format!("cannot reach Crisp at {}: {}", client.base(), e.message()),
        ),
        Err(e) => Verdict::Other(e.message()),
    }
}
