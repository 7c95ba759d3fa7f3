//! The arithmetic of budgets shared across replicas: how much a replica asks for, and how much
//! of a budget it is granted given what the others hold and want. Pure: no clock, no I/O.
//!
//! The rule that keeps a budget global: a grant never exceeds what the other live leases leave
//! free, so the shares held at any moment add up to at most the budget. Fairness comes from the
//! target: a max-min fair split of the budget over every live replica's wish, so an idle
//! replica keeps little and a busy one gets the rest; a replica above its fair share gives the
//! excess back at its next renewal, and the one that wanted it takes it at its own.

/// A budget in full, or a part of one: calls per second and concurrent calls.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct Amount {
    pub rate: f64,
    pub slots: u32,
}

/// Another live replica's lease on the same budget.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Peer<'a> {
    pub replica: &'a str,
    pub want: Amount,
    pub held: Amount,
}

/// What a replica saw of a budget since its last renewal.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct Demand {
    /// Calls asked for per second (admitted or refused).
    pub rate: f64,
    /// The most calls in flight at once.
    pub peak_slots: u32,
    /// Whether a call waited or was refused for want of budget: the replica would use more.
    pub starved_rate: bool,
    pub starved_slots: bool,
}

/// Headroom over recent demand, so a replica whose traffic grows is not starved until its
/// next renewal.
const HEADROOM: f64 = 1.25;

/// What a replica asks for: its recent demand with headroom, the whole budget when it was
/// starved, and never less than a trickle (one call per second, one slot), so a call arriving
/// at an idle replica is not refused while its lease grows.
pub fn want(total: Amount, demand: Demand) -> Amount {
    let rate = if demand.starved_rate {
        total.rate
    } else {
        (demand.rate * HEADROOM + 1.0).min(total.rate)
    };
    let slots = if demand.starved_slots {
        total.slots
    } else {
        // Truncation is fine: the `+ 1` is the headroom of a small replica.
        ((f64::from(demand.peak_slots) * HEADROOM) as u32 + 1).min(total.slots)
    };
    Amount { rate, slots }
}

/// Max-min fair split of `total` over `wants`: each gets its wish or an equal part of what is
/// left, whichever is smaller, and what the modest leave over goes to the others. What no one
/// wants is split equally too, so a lone replica holds the whole budget and a burst on an
/// idle replica finds a share already there.
pub fn fair_split(total: f64, wants: &[f64]) -> Vec<f64> {
    let mut shares = vec![0.0; wants.len()];
    let mut order: Vec<usize> = (0..wants.len()).collect();
    order.sort_by(|&a, &b| wants[a].total_cmp(&wants[b]));
    let mut left = total.max(0.0);
    for (served, &i) in order.iter().enumerate() {
        let equal = left / (order.len() - served) as f64;
        shares[i] = wants[i].max(0.0).min(equal);
        left -= shares[i];
    }
    if !shares.is_empty() {
        let spare = left / shares.len() as f64;
        for share in &mut shares {
            *share += spare;
        }
    }
    shares
}

/// The replicas in the order that hands out what does not divide evenly: by name, starting
/// `turn` places along, so that when there is less than one each, each replica's turn comes.
fn turn_order(order_key: &[&str], turn: u64) -> Vec<usize> {
    let mut order: Vec<usize> = (0..order_key.len()).collect();
    order.sort_by_key(|&i| order_key[i]);
    if !order.is_empty() {
        let n = order.len() as u64;
        // Below `n`, so it fits a `usize`.
        order.rotate_left((turn % n) as usize);
    }
    order
}

/// `fair_split` in whole slots: the remainder of the division goes one each, in turn order,
/// first to those whose wish is not met, then to everyone, so no slot is left unassigned.
fn fair_slots(total: u32, wants: &[u32], order_key: &[&str], turn: u64) -> Vec<u32> {
    let real: Vec<f64> = wants.iter().map(|&w| f64::from(w)).collect();
    // Floors of non-negative values no larger than `total`.
    let mut shares: Vec<u32> = fair_split(f64::from(total), &real)
        .into_iter()
        .map(|s| (s + 1e-9).floor() as u32)
        .collect();
    let mut left = total.saturating_sub(shares.iter().sum());
    let order = turn_order(order_key, turn);
    for wishing_only in [true, false] {
        for &i in &order {
            if left > 0 && (!wishing_only || shares[i] < wants[i]) {
                shares[i] += 1;
                left -= 1;
            }
        }
    }
    shares
}

/// `fair_split` of a rate, in whole calls per second when there is at least one for each
/// replica. A replica paces its calls evenly, so a second can hold its share rounded up: with
/// a fraction each, the replicas together could send one call more per replica in a second
/// than the budget; with whole shares they never do. Below one call, what is left goes to
/// the first replica by name.
///
/// The whole calls that do not divide evenly stay in name order rather than go round as
/// slots do: every replica has at least one call a second here, and a call a second moving
/// from one replica to another would let one second hold both the old share and the new.
fn fair_rate(total: f64, wants: &[f64], order_key: &[&str]) -> Vec<f64> {
    let whole = total.max(0.0).floor();
    if whole < wants.len() as f64 || whole > f64::from(u32::MAX) {
        return fair_split(total, wants);
    }
    // Whole numbers no larger than `whole`, itself within `u32`.
    let units: Vec<u32> = wants
        .iter()
        .map(|w| w.max(0.0).ceil().min(whole) as u32)
        .collect();
    let mut shares: Vec<f64> = fair_slots(whole as u32, &units, order_key, 0)
        .into_iter()
        .map(f64::from)
        .collect();
    if let Some(first) = (0..wants.len()).min_by_key(|&i| order_key[i]) {
        shares[first] += total - whole;
    }
    shares
}

/// The share `me` is granted of `total`: its fair part of the budget among the live
/// replicas, but never more than the others leave free right now, less `newcomer` kept free
/// for each of the `live` replicas (as `me` last counted them) that holds no lease on the
/// budget yet, up to one replica's equal part in all: what such a replica spends before its
/// first lease answers. `turn` (the lease period, which every replica reads off the clock)
/// picks who gets the slots that do not divide evenly, so a replica is not left without a
/// slot for as long as there are fewer slots than replicas.
pub fn grant(
    total: Amount,
    me: &str,
    want: Amount,
    peers: &[Peer<'_>],
    newcomer: Amount,
    live: usize,
    turn: u64,
) -> Amount {
    let others: Vec<&Peer<'_>> = peers.iter().filter(|p| p.replica != me).collect();
    let mut rate_wants: Vec<f64> = others.iter().map(|p| p.want.rate).collect();
    rate_wants.push(want.rate);
    let mut slot_wants: Vec<u32> = others.iter().map(|p| p.want.slots).collect();
    slot_wants.push(want.slots);
    let mut names: Vec<&str> = others.iter().map(|p| p.replica).collect();
    names.push(me);

    let fair_rate = fair_rate(total.rate, &rate_wants, &names)[others.len()];
    let fair_slots = fair_slots(total.slots, &slot_wants, &names, turn)[others.len()];
    // Room for every replica yet to lease, but no more than one replica's equal part in all:
    // among many replicas, most of which may never call this budget, a busy one alone on it
    // still holds most of it.
    let newcomers = live.saturating_sub(others.len() + 1);
    let live = u32::try_from(live.max(1)).unwrap_or(u32::MAX);
    let kept_rate = (newcomer.rate * newcomers as f64).min(total.rate / f64::from(live));
    let kept_slots = newcomer
        .slots
        .saturating_mul(u32::try_from(newcomers).unwrap_or(u32::MAX))
        .min(total.slots / live);
    let held_rate: f64 = others.iter().map(|p| p.held.rate).sum();
    let held_slots: u32 = others.iter().map(|p| p.held.slots).sum();
    Amount {
        rate: fair_rate.min(total.rate - held_rate - kept_rate).max(0.0),
        slots: fair_slots.min(
            total
                .slots
                .saturating_sub(held_slots)
                .saturating_sub(kept_slots),
        ),
    }
}

/// The room every grant keeps for each live replica that holds no lease on a budget that
/// queues (an account's), up to one replica's equal part in all (`grant`): an idle replica's
/// wish (`want`), or an equal part among the live replicas when that is less, and no slot where
/// there is not one for each. A replica new to the budget spends an equal part (`provisional`)
/// for the moment its first renewal takes; the room keeps most of those first calls off the
/// shares the others hold. A lone replica keeps no room.
pub fn newcomer(total: Amount, replicas: usize) -> Amount {
    if replicas <= 1 {
        return total;
    }
    let idle = want(total, Demand::default());
    let n = u32::try_from(replicas).unwrap_or(u32::MAX);
    Amount {
        rate: idle.rate.min(total.rate / f64::from(n)),
        slots: idle.slots.min(total.slots / n),
    }
}

/// The lease period `now` falls in (unix milliseconds, periods of `ttl` milliseconds): the
/// same for every replica whose clock agrees, so they take turns in the same order.
pub fn turn(now: i64, ttl: i64) -> u64 {
    u64::try_from(now / ttl.max(1)).unwrap_or_default()
}

/// An equal part of a budget among the live replicas: what a budget that refuses (a key's)
/// spends before its first lease, and what every budget falls back to when the leases cannot
/// be renewed; if every replica took it at once, the parts add up to the budget.
pub fn provisional(total: Amount, replicas: usize) -> Amount {
    let n = replicas.max(1);
    Amount {
        rate: total.rate / n as f64,
        slots: (total.slots / u32::try_from(n).unwrap_or(u32::MAX)).max(u32::from(total.slots > 0)),
    }
}

/// The rate a replica keeps of a budget whatever the others hold: its wish, up to an equal part
/// among the live replicas. Spending it may take the budget over while a holder above its fair
/// share has not yet renewed (one renewal at most: the floor is recorded, so the holder's next
/// grant leaves room for it).
pub fn equal_part(total: Amount, want: Amount, replicas: usize) -> f64 {
    want.rate.min(total.rate / replicas.max(1) as f64)
}

/// What a replica spends now, given the grant it had and the one it just got: a cut applies at
/// once, a rise only at the next renewal. A rise comes from a share another replica just gave
/// back, which the database records a moment before that replica applies the cut (when its
/// renewal answers, its calls in flight meanwhile); waiting one renewal keeps the two from
/// spending the same share at once.
pub fn effective(previous: Amount, granted: Amount) -> Amount {
    Amount {
        rate: previous.rate.min(granted.rate),
        slots: previous.slots.min(granted.slots),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const BUDGET: Amount = Amount {
        rate: 20.0,
        slots: 8,
    };

    fn peer(replica: &str, want: Amount, held: Amount) -> Peer<'_> {
        Peer {
            replica,
            want,
            held,
        }
    }

    /// `grant` of the budget among replicas that all hold a lease on it.
    fn leased(me: &str, want: Amount, peers: &[Peer<'_>]) -> Amount {
        grant(BUDGET, me, want, peers, Amount::default(), 0, 0)
    }

    fn sum(shares: &[f64]) -> f64 {
        shares.iter().sum()
    }

    #[test]
    fn fair_split_gives_the_modest_their_wish_and_the_rest_to_the_busy() {
        let shares = fair_split(20.0, &[1.0, 20.0, 20.0]);
        assert_eq!(shares, vec![1.0, 9.5, 9.5]);
        assert_eq!(fair_split(20.0, &[20.0, 20.0, 20.0, 20.0]), vec![5.0; 4]);
        assert_eq!(
            fair_split(20.0, &[2.0, 3.0]),
            vec![9.5, 10.5],
            "what no one wants is split too"
        );
        assert!((sum(&fair_split(25.0, &[30.0, 7.0, 30.0])) - 25.0).abs() < 1e-9);
        assert!(fair_split(20.0, &[]).is_empty());
    }

    #[test]
    fn whole_slots_are_all_given_out() {
        assert_eq!(
            fair_slots(32, &[32, 32, 32], &["a", "b", "c"], 0),
            vec![11, 11, 10]
        );
        assert_eq!(fair_slots(8, &[1, 8], &["a", "b"], 0), vec![1, 7]);
        assert_eq!(fair_slots(8, &[2, 2], &["a", "b"], 0), vec![4, 4]);
        assert_eq!(fair_slots(7, &[1, 1], &["a", "b"], 0), vec![4, 3]);
    }

    #[test]
    fn what_does_not_divide_goes_round_in_turn() {
        let names = ["a", "b", "c"];
        assert_eq!(fair_slots(2, &[2, 2, 2], &names, 0), vec![1, 1, 0]);
        assert_eq!(fair_slots(2, &[2, 2, 2], &names, 1), vec![0, 1, 1]);
        assert_eq!(fair_slots(2, &[2, 2, 2], &names, 2), vec![1, 0, 1]);
        assert_eq!(fair_slots(2, &[2, 2, 2], &names, 5), vec![1, 0, 1]);
    }

    #[test]
    fn with_fewer_slots_than_replicas_each_replica_gets_one_in_turn() {
        // Two slots, three replicas that each want both, renewing one after another as the
        // lease periods pass: every replica holds a slot in some period, and the slots held
        // never add up past two.
        let total = Amount {
            rate: 20.0,
            slots: 2,
        };
        let names = ["a", "b", "c"];
        let mut held = [Amount::default(); 3];
        let mut ever = [false; 3];
        for renewal in 0..36_usize {
            let i = renewal % 3;
            let turn = (renewal / 4) as u64;
            let peers: Vec<Peer<'_>> = (0..3).map(|j| peer(names[j], total, held[j])).collect();
            // The store records the grant as held.
            held[i] = grant(total, names[i], total, &peers, Amount::default(), 3, turn);
            let slots: u32 = held.iter().map(|h| h.slots).sum();
            assert!(slots <= 2, "renewal {renewal}: {held:?}");
            ever[i] |= held[i].slots > 0;
        }
        assert_eq!(ever, [true; 3], "every replica held a slot at some time");
    }

    #[test]
    fn rates_are_split_in_whole_calls_where_there_is_one_each() {
        let names = ["a", "b", "c"];
        assert_eq!(
            fair_rate(20.0, &[20.0, 20.0, 20.0], &names),
            vec![7.0, 7.0, 6.0],
            "not 6.67 each: three paced at 6.67 can send 21 in a second"
        );
        assert_eq!(
            fair_rate(20.0, &[1.25, 20.0, 20.0], &names),
            vec![2.0, 9.0, 9.0]
        );
        assert_eq!(
            fair_rate(20.5, &[20.0, 20.0], &names[..2]),
            vec![10.5, 10.0],
            "the part of a call left over goes to the first"
        );
        assert_eq!(
            fair_rate(2.0, &[2.0, 2.0, 2.0], &names),
            fair_split(2.0, &[2.0, 2.0, 2.0]),
            "below one call each, fractions"
        );
    }

    #[test]
    fn a_lone_replica_gets_what_it_wants_up_to_the_budget() {
        let got = leased("a", BUDGET, &[]);
        assert_eq!(got, BUDGET);
        let small = Amount {
            rate: 3.0,
            slots: 2,
        };
        assert_eq!(leased("a", small, &[]), BUDGET, "alone, it may burst");
        // Its own old row does not count against it.
        assert_eq!(leased("a", BUDGET, &[peer("a", BUDGET, BUDGET)]), BUDGET);
    }

    #[test]
    fn a_joining_replica_gets_its_share_once_the_holder_gives_it_back() {
        // `a` holds everything; `b` joins wanting everything too.
        let first = leased("b", BUDGET, &[peer("a", BUDGET, BUDGET)]);
        assert_eq!(first, Amount::default(), "nothing is free yet");
        // `a` renews and sees `b`'s wish: it keeps its fair half only.
        let a = leased("a", BUDGET, &[peer("b", BUDGET, first)]);
        assert_eq!(
            a,
            Amount {
                rate: 10.0,
                slots: 4
            }
        );
        // `b` renews and takes the half `a` gave back.
        let b = leased("b", BUDGET, &[peer("a", BUDGET, a)]);
        assert_eq!(b, a);
    }

    #[test]
    fn a_busy_replica_gets_most_of_the_budget_beside_idle_ones() {
        let trickle = want(BUDGET, Demand::default());
        assert_eq!(
            trickle,
            Amount {
                rate: 1.0,
                slots: 1
            }
        );
        let busy = want(
            BUDGET,
            Demand {
                rate: 40.0,
                peak_slots: 8,
                starved_rate: true,
                starved_slots: true,
            },
        );
        assert_eq!(busy, BUDGET);
        let got = leased(
            "a",
            busy,
            &[peer("b", trickle, trickle), peer("c", trickle, trickle)],
        );
        assert_eq!(
            got,
            Amount {
                rate: 18.0,
                slots: 6
            }
        );
    }

    #[test]
    fn a_lone_holder_leaves_room_for_the_replicas_yet_to_lease() {
        let idle = newcomer(BUDGET, 3);
        assert_eq!(
            idle,
            Amount {
                rate: 1.0,
                slots: 1
            },
            "an idle replica's wish"
        );
        // `a` is the first of three live replicas to lease: it keeps the others' first calls.
        let a = grant(BUDGET, "a", BUDGET, &[], idle, 3, 0);
        assert_eq!(
            a,
            Amount {
                rate: 18.0,
                slots: 6
            }
        );
        // `b` leases next: it may spend what `a` left, and keeps room for `c` only.
        let b = grant(BUDGET, "b", BUDGET, &[peer("a", BUDGET, a)], idle, 3, 0);
        assert_eq!(
            b,
            Amount {
                rate: 1.0,
                slots: 1
            }
        );
        assert_eq!(
            newcomer(BUDGET, 1),
            BUDGET,
            "alone, nothing is kept for others"
        );
        // Among ten replicas, the nine yet to lease share one replica's part: 2 calls/s.
        let among_ten = grant(BUDGET, "a", BUDGET, &[], newcomer(BUDGET, 10), 10, 0);
        assert_eq!(
            among_ten,
            Amount {
                rate: 18.0,
                slots: 8
            },
            "no slot is kept where there is not one for each"
        );
        let small = Amount {
            rate: 2.0,
            slots: 2,
        };
        assert_eq!(
            newcomer(small, 3),
            Amount {
                rate: 2.0 / 3.0,
                slots: 0
            },
            "less than a slot each: none is kept"
        );
    }

    #[test]
    fn grants_never_add_up_past_the_budget() {
        // Replicas renewing in turn, with changing wishes, never hold more than the budget.
        let names = ["a", "b", "c"];
        let mut held = [Amount::default(); 3];
        let mut wants = [BUDGET; 3];
        for round in 0..50_usize {
            let i = round % 3;
            wants[(round / 3) % 3] = Amount {
                rate: (round % 7) as f64 * 3.0,
                slots: (round % 5) as u32,
            };
            let peers: Vec<Peer<'_>> = (0..3).map(|j| peer(names[j], wants[j], held[j])).collect();
            held[i] = leased(names[i], wants[i], &peers);
            let rate: f64 = held.iter().map(|h| h.rate).sum();
            let slots: u32 = held.iter().map(|h| h.slots).sum();
            assert!(rate <= BUDGET.rate + 1e-9, "round {round}: {held:?}");
            assert!(slots <= BUDGET.slots, "round {round}: {held:?}");
        }
    }

    #[test]
    fn demand_sizes_the_wish_with_headroom() {
        let got = want(
            BUDGET,
            Demand {
                rate: 8.0,
                peak_slots: 2,
                ..Demand::default()
            },
        );
        assert_eq!(
            got,
            Amount {
                rate: 11.0,
                slots: 3
            }
        );
        let capped = want(
            BUDGET,
            Demand {
                rate: 100.0,
                peak_slots: 100,
                ..Demand::default()
            },
        );
        assert_eq!(capped, BUDGET);
    }

    #[test]
    fn provisional_shares_add_up_to_the_budget() {
        assert_eq!(
            provisional(BUDGET, 4),
            Amount {
                rate: 5.0,
                slots: 2
            }
        );
        assert_eq!(provisional(BUDGET, 0), BUDGET);
        assert_eq!(
            provisional(
                Amount {
                    rate: 1.0,
                    slots: 2
                },
                3
            )
            .slots,
            1
        );
    }

    #[test]
    fn the_equal_part_is_the_wish_up_to_one_replicas_part() {
        let want = Amount {
            rate: 6.0,
            slots: 1,
        };
        assert_eq!(equal_part(BUDGET, want, 2), 6.0);
        assert_eq!(equal_part(BUDGET, BUDGET, 4), 5.0);
        assert_eq!(equal_part(BUDGET, BUDGET, 0), 20.0);
    }

    #[test]
    fn cuts_apply_at_once_and_rises_a_renewal_later() {
        let old = Amount {
            rate: 10.0,
            slots: 4,
        };
        let cut = Amount {
            rate: 5.0,
            slots: 2,
        };
        assert_eq!(effective(old, cut), cut);
        assert_eq!(effective(old, BUDGET), old);
        assert_eq!(effective(BUDGET, BUDGET), BUDGET);
    }
}
