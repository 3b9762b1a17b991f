//! The mount's blob cache: decoded data blobs, least recently used evicted first, bounded by
//! their total bytes, so reading a file in small pieces (the kernel asks 128 KiB at a time)
//! fetches each chunk once, and memory stays at the bound whatever is read.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use cairn_repo::BlobId;

/// Blobs by id, bounded in bytes.
pub struct BlobCache {
    limit: usize,
    used: usize,
    clock: u64,
    blobs: HashMap<BlobId, (Arc<Vec<u8>>, u64)>,
    /// Last use → id, oldest first.
    order: BTreeMap<u64, BlobId>,
}

impl BlobCache {
    /// A cache holding at most `limit` bytes (a blob larger than that is not kept).
    pub fn new(limit: usize) -> BlobCache {
        BlobCache {
            limit,
            used: 0,
            clock: 0,
            blobs: HashMap::new(),
            order: BTreeMap::new(),
        }
    }

    /// The blob, if cached (it becomes the most recently used).
    pub fn get(&mut self, id: &BlobId) -> Option<Arc<Vec<u8>>> {
        self.clock += 1;
        let (bytes, used) = self.blobs.get_mut(id)?;
        self.order.remove(used);
        *used = self.clock;
        self.order.insert(self.clock, *id);
        Some(Arc::clone(bytes))
    }

    /// Keeps `bytes` as blob `id`, evicting the least recently used beyond the limit.
    pub fn insert(&mut self, id: BlobId, bytes: Arc<Vec<u8>>) {
        if bytes.len() > self.limit || self.blobs.contains_key(&id) {
            return;
        }
        while self.used + bytes.len() > self.limit {
            let Some((_, oldest)) = self.order.pop_first() else {
                break;
            };
            if let Some((gone, _)) = self.blobs.remove(&oldest) {
                self.used -= gone.len();
            }
        }
        self.clock += 1;
        self.used += bytes.len();
        self.order.insert(self.clock, id);
        self.blobs.insert(id, (bytes, self.clock));
    }

    /// Bytes held.
    #[cfg(test)]
    pub fn used(&self) -> usize {
        self.used
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id(n: u8) -> BlobId {
        BlobId([n; 32])
    }

    #[test]
    fn least_recently_used_goes_first_and_the_bound_holds() {
        let mut cache = BlobCache::new(10);
        cache.insert(id(1), Arc::new(vec![1; 4]));
        cache.insert(id(2), Arc::new(vec![2; 4]));
        assert!(cache.get(&id(1)).is_some()); // 2 is now the oldest
        cache.insert(id(3), Arc::new(vec![3; 4]));
        assert!(cache.get(&id(2)).is_none());
        assert!(cache.get(&id(1)).is_some());
        assert!(cache.get(&id(3)).is_some());
        assert_eq!(cache.used(), 8);
        cache.insert(id(4), Arc::new(vec![4; 11]));
        assert!(cache.get(&id(4)).is_none(), "larger than the whole cache");
    }

    proptest::proptest! {
        #[test]
        fn never_over_the_limit(ops in proptest::collection::vec((0u8..20, 0usize..40), 0..200)) {
            let mut cache = BlobCache::new(64);
            for (n, len) in ops {
                cache.insert(id(n), Arc::new(vec![n; len]));
                proptest::prop_assert!(cache.used() <= 64);
                if let Some(bytes) = cache.get(&id(n)) {
                    proptest::prop_assert!(bytes.iter().all(|&b| b == n));
                }
            }
        }
    }
}
