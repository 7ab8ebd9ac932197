//! A bounded map from server names to minted leaves, kept for the run and only in memory.
//!
//! First in, first out: when full, the oldest entry goes. Minting again costs one ECDSA
//! signature (tens of microseconds), so a smarter policy would not pay for itself; the bound
//! only keeps a client that invents names (`a1.example`, `a2.example`, …) from growing memory.

use std::collections::{HashMap, VecDeque};
use std::hash::Hash;
use std::sync::{Arc, Mutex, PoisonError};

/// How many leaves a run keeps by default (mitmproxy keeps 100; ours are smaller).
pub const DEFAULT_CAPACITY: usize = 1024;

/// The cache. Values are shared (`Arc`) so a hit costs a reference count, not a copy.
#[derive(Debug)]
pub struct BoundedCache<K, V> {
    capacity: usize,
    inner: Mutex<Inner<K, V>>,
}

#[derive(Debug)]
struct Inner<K, V> {
    map: HashMap<K, Arc<V>>,
    order: VecDeque<K>,
}

impl<K: Eq + Hash + Clone, V> BoundedCache<K, V> {
    /// An empty cache holding at most `capacity` entries (at least one).
    pub fn new(capacity: usize) -> Self {
        BoundedCache {
            capacity: capacity.max(1),
            inner: Mutex::new(Inner {
                map: HashMap::new(),
                order: VecDeque::new(),
            }),
        }
    }

    /// The entry for `key`, if it is cached.
    pub fn get(&self, key: &K) -> Option<Arc<V>> {
        self.lock().map.get(key).cloned()
    }

    /// The entry for `key`, made by `make` when missing. `make` runs outside the lock, so two
    /// connections asking for the same new name may both make one; the first stored wins and
    /// both get it.
    pub fn get_or_try_insert<E>(
        &self,
        key: &K,
        make: impl FnOnce() -> Result<V, E>,
    ) -> Result<Arc<V>, E> {
        if let Some(hit) = self.get(key) {
            return Ok(hit);
        }
        let made = Arc::new(make()?);
        let mut inner = self.lock();
        if let Some(raced) = inner.map.get(key) {
            return Ok(raced.clone());
        }
        while inner.map.len() >= self.capacity {
            match inner.order.pop_front() {
                Some(oldest) => {
                    inner.map.remove(&oldest);
                }
                None => break,
            }
        }
        inner.map.insert(key.clone(), made.clone());
        inner.order.push_back(key.clone());
        Ok(made)
    }

    /// How many entries are cached.
    pub fn len(&self) -> usize {
        self.lock().map.len()
    }

    /// Whether nothing is cached.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner<K, V>> {
        // The map stays consistent even if a holder panicked: every mutation is a single call.
        self.inner.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hits_share_the_stored_value_and_misses_make_one() {
        let cache = BoundedCache::new(4);
        let a = cache.get_or_try_insert(&"a", || Ok::<_, ()>(1)).unwrap();
        let again = cache
            .get_or_try_insert(&"a", || -> Result<i32, ()> { panic!("must not re-make") })
            .unwrap();
        assert!(Arc::ptr_eq(&a, &again));
        assert_eq!(cache.len(), 1);
    }

    #[test]
    fn the_oldest_entry_goes_when_full() {
        let cache = BoundedCache::new(2);
        for (k, v) in [("a", 1), ("b", 2), ("c", 3)] {
            cache.get_or_try_insert(&k, || Ok::<_, ()>(v)).unwrap();
        }
        assert_eq!(cache.len(), 2);
        assert!(cache.get(&"a").is_none());
        assert_eq!(cache.get(&"c").as_deref(), Some(&3));
    }

    #[test]
    fn a_failed_make_stores_nothing() {
        let cache: BoundedCache<&str, i32> = BoundedCache::new(2);
        assert_eq!(cache.get_or_try_insert(&"a", || Err("no")), Err("no"));
        assert!(cache.is_empty());
    }
}
