//! A concurrent map whose entries live for a fixed time: the lookups every call makes (its
//! verified key, its workspace's accounts) without a general-purpose cache's bookkeeping.
//!
//! A hit is a shard's read lock and one probe. A general cache also records each read for its
//! eviction policy and runs that upkeep on the caller's thread; these maps are filled only by
//! work that is slow anyway (an argon2 check, a database read), so when a shard is full it
//! drops its expired entries and then an arbitrary eighth of the rest: a dropped entry costs
//! one slow lookup again, never a wrong answer.

use std::borrow::Borrow;
use std::collections::HashMap;
use std::hash::{BuildHasher, Hash};
use std::time::{Duration, Instant};

use parking_lot::RwLock;

/// Shards, so that calls on both cores rarely meet on one lock (a power of two).
const SHARDS: usize = 16;

type Hasher = foldhash::fast::RandomState;
type Shard<K, V> = RwLock<HashMap<K, Entry<V>, Hasher>>;

pub struct TtlCache<K, V> {
    shards: Box<[Shard<K, V>]>,
    /// Picks the shard; each shard's map hashes with its own seed.
    hasher: Hasher,
    ttl: Duration,
    /// The most entries one shard holds.
    shard_capacity: usize,
}

struct Entry<V> {
    value: V,
    expires: Instant,
}

impl<K: Hash + Eq, V: Clone> TtlCache<K, V> {
    /// A map of at most about `capacity` entries, each kept for `ttl` after it was inserted.
    pub fn new(capacity: usize, ttl: Duration) -> Self {
        Self {
            shards: (0..SHARDS).map(|_| RwLock::default()).collect(),
            hasher: Hasher::default(),
            ttl,
            shard_capacity: capacity.div_ceil(SHARDS).max(1),
        }
    }

    fn shard<Q: Hash + ?Sized>(&self, key: &Q) -> &Shard<K, V> {
        // The high bits: the shard's own map uses its hash's low bits for its buckets.
        let hash = self.hasher.hash_one(key);
        &self.shards[(hash >> 60) as usize % SHARDS]
    }

    /// The value under `key`, unless it has expired.
    pub fn get<Q>(&self, key: &Q) -> Option<V>
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        let shard = self.shard(key).read();
        let entry = shard.get(key)?;
        (entry.expires > Instant::now()).then(|| entry.value.clone())
    }

    pub fn insert(&self, key: K, value: V) {
        let now = Instant::now();
        let mut shard = self.shard(&key).write();
        if shard.len() >= self.shard_capacity && !shard.contains_key(&key) {
            shard.retain(|_, entry| entry.expires > now);
            if shard.len() >= self.shard_capacity {
                let excess = shard.len() + 1 - self.shard_capacity;
                let drop = excess.max(self.shard_capacity / 8);
                let mut dropped = 0;
                shard.retain(|_, _| {
                    dropped += 1;
                    dropped > drop
                });
            }
        }
        let expires = now + self.ttl;
        shard.insert(key, Entry { value, expires });
    }

    pub fn invalidate<Q>(&self, key: &Q)
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        self.shard(key).write().remove(key);
    }

    pub fn invalidate_all(&self) {
        for shard in &self.shards {
            // Replaced rather than cleared, so a table grown by a burst is handed back.
            *shard.write() = HashMap::default();
        }
    }

    /// How many entries are held, expired ones included until they are dropped.
    #[cfg(test)]
    fn len(&self) -> usize {
        self.shards.iter().map(|shard| shard.read().len()).sum()
    }

    #[cfg(test)]
    fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_entry_is_found_until_it_expires_or_is_invalidated() {
        let cache = TtlCache::new(100, Duration::from_millis(50));
        cache.insert("a".to_owned(), 1);
        cache.insert("b".to_owned(), 2);
        assert_eq!(cache.get("a"), Some(1));
        cache.insert("a".to_owned(), 3);
        assert_eq!(cache.get("a"), Some(3), "a new value replaces the old");
        cache.invalidate("a");
        assert_eq!(cache.get("a"), None);
        assert_eq!(cache.get("b"), Some(2));
        std::thread::sleep(Duration::from_millis(60));
        assert_eq!(cache.get("b"), None, "expired");
        cache.insert("c".to_owned(), 4);
        cache.invalidate_all();
        assert_eq!(cache.get("c"), None);
        assert!(cache.is_empty());
    }

    #[test]
    fn a_full_cache_stays_within_its_capacity_and_keeps_what_it_was_given_last() {
        let capacity = 160;
        let cache = TtlCache::new(capacity, Duration::from_secs(60));
        for i in 0..10_000 {
            cache.insert(i, i);
            assert_eq!(cache.get(&i), Some(i), "the value just inserted");
        }
        assert!(cache.len() <= capacity, "{} entries", cache.len());
        assert!(cache.len() >= capacity / 2, "{} entries", cache.len());
    }

    #[test]
    fn expired_entries_make_room_before_live_ones_are_dropped() {
        // Eight entries a shard, every shard filled with entries that then expire.
        let cache = TtlCache::new(SHARDS * 8, Duration::from_millis(30));
        for i in 0..SHARDS * 100 {
            cache.insert(i, i);
        }
        std::thread::sleep(Duration::from_millis(40));
        // As many new entries as there are shards: they take the expired entries' room, and
        // none of them is dropped (unless nine of sixteen hash to one shard, about one run in
        // three hundred thousand).
        let live: Vec<usize> = (100_000..100_000 + SHARDS).collect();
        for &i in &live {
            cache.insert(i, i);
        }
        for &i in &live {
            assert_eq!(cache.get(&i), Some(i));
        }
        assert!(
            (0..SHARDS * 100).all(|i| cache.get(&i).is_none()),
            "all expired"
        );
    }
}
