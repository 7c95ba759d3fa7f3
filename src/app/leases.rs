//! The store as the port through which shared budgets renew their leases: the lease
//! arithmetic (`limits::lease`) runs inside the store's transaction, per budget.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;

use crate::limits::lease::{Amount, Peer};
use crate::limits::{Ask, Granted, LeasePort};
use crate::store::{BudgetDecision, BudgetLease, Store};

pub struct StoreLeases(pub Arc<dyn Store>);

fn amount(rate: f64, slots: i64) -> Amount {
    Amount {
        rate,
        slots: u32::try_from(slots.max(0)).unwrap_or(u32::MAX),
    }
}

#[async_trait]
impl LeasePort for StoreLeases {
    async fn renew(
        &self,
        replica: &str,
        asks: &[Ask],
        released: &[String],
        ttl: Duration,
    ) -> Result<Vec<Granted>, String> {
        let now = crate::kernel::clock::now_millis();
        let ttl_ms = i64::try_from(ttl.as_millis()).unwrap_or(i64::MAX);
        let budgets: Vec<String> = asks.iter().map(|a| a.budget.clone()).collect();
        let granted = parking_lot::Mutex::new(vec![Amount::default(); asks.len()]);
        let decide = |index: usize, others: &[BudgetLease]| {
            let ask = &asks[index];
            let peers: Vec<Peer<'_>> = others
                .iter()
                .map(|o| Peer {
                    replica: &o.replica_id,
                    want: amount(o.want_rate, o.want_slots),
                    held: amount(o.rate, o.slots),
                })
                .collect();
            let share = ask.grant(replica, &peers, now, ttl);
            granted.lock()[index] = share;
            // Slots still in use past a cut stay recorded as held until their calls end.
            BudgetDecision {
                want_rate: ask.want.rate,
                want_slots: i64::from(ask.want.slots),
                rate: share.rate.max(ask.holding.rate),
                slots: i64::from(share.slots.max(ask.holding.slots)),
            }
        };
        let renewed = self
            .0
            .renew_budget_leases(replica, &budgets, now, now + ttl_ms, released, &decide)
            .await
            .map_err(|e| e.to_string())?;
        let granted = granted.into_inner();
        Ok(renewed
            .into_iter()
            .zip(granted)
            .map(|(r, share)| Granted {
                share,
                replicas: r.replicas,
            })
            .collect())
    }
}
