//! The HPACK static table (RFC 7541 Appendix A) and dynamic table (RFC 7541 §2.3.2, §4): what an index means.

use std::collections::VecDeque;

/// RFC 7541 Appendix A, index 1 first.
pub const STATIC_TABLE: [(&str, &str); 61] = [
    (":authority", ""),
    (":method", "GET"),
    (":method", "POST"),
    (":path", "/"),
    (":path", "/index.html"),
    (":scheme", "http"),
    (":scheme", "https"),
    (":status", "200"),
    (":status", "204"),
    (":status", "206"),
    (":status", "304"),
    (":status", "400"),
    (":status", "404"),
    (":status", "500"),
    ("accept-charset", ""),
    ("accept-encoding", "gzip, deflate"),
    ("accept-language", ""),
    ("accept-ranges", ""),
    ("accept", ""),
    ("access-control-allow-origin", ""),
    ("age", ""),
    ("allow", ""),
    ("authorization", ""),
    ("cache-control", ""),
    ("content-disposition", ""),
    ("content-encoding", ""),
    ("content-language", ""),
    ("content-length", ""),
    ("content-location", ""),
    ("content-range", ""),
    ("content-type", ""),
    ("cookie", ""),
    ("date", ""),
    ("etag", ""),
    ("expect", ""),
    ("expires", ""),
    ("from", ""),
    ("host", ""),
    ("if-match", ""),
    ("if-modified-since", ""),
    ("if-none-match", ""),
    ("if-range", ""),
    ("if-unmodified-since", ""),
    ("last-modified", ""),
    ("link", ""),
    ("location", ""),
    ("max-forwards", ""),
    ("proxy-authenticate", ""),
    ("proxy-authorization", ""),
    ("range", ""),
    ("referer", ""),
    ("refresh", ""),
    ("retry-after", ""),
    ("server", ""),
    ("set-cookie", ""),
    ("strict-transport-security", ""),
    ("transfer-encoding", ""),
    ("user-agent", ""),
    ("vary", ""),
    ("via", ""),
    ("www-authenticate", ""),
];

/// The first static index whose name is `name`, for faultline's own encoder.
pub fn static_name_index(name: &[u8]) -> Option<usize> {
    STATIC_TABLE
        .iter()
        .position(|(known, _)| known.as_bytes() == name)
        .map(|i| i + 1)
}

/// Per-entry overhead RFC 7541 §4.1 adds to name and value lengths.
const ENTRY_OVERHEAD: usize = 32;

/// One peer's dynamic table as its decoder sees it: newest entry first, evicted oldest first.
#[derive(Debug, Clone, Default)]
pub struct DynamicTable {
    entries: VecDeque<(Vec<u8>, Vec<u8>)>,
    /// Sum of entry sizes (name + value + 32 each).
    size: usize,
    /// Current maximum, set by dynamic table size updates.
    max_size: usize,
}

impl DynamicTable {
    /// An empty table with the given maximum size.
    pub fn new(max_size: usize) -> DynamicTable {
        DynamicTable {
            entries: VecDeque::new(),
            size: 0,
            max_size,
        }
    }

    /// Current size in RFC 7541 units.
    pub fn size(&self) -> usize {
        self.size
    }

    /// Current maximum size.
    pub fn max_size(&self) -> usize {
        self.max_size
    }

    /// Number of entries.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether the table holds nothing.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Applies a dynamic table size update, evicting what no longer fits.
    pub fn set_max_size(&mut self, max_size: usize) {
        self.max_size = max_size;
        self.evict_to(max_size);
    }

    /// Inserts a new entry at index 62, evicting old ones; an entry larger than the whole table
    /// empties it and is not inserted (RFC 7541 §4.4).
    pub fn insert(&mut self, name: Vec<u8>, value: Vec<u8>) {
        let entry = name.len() + value.len() + ENTRY_OVERHEAD;
        if entry > self.max_size {
            self.entries.clear();
            self.size = 0;
            return;
        }
        self.evict_to(self.max_size - entry);
        self.size += entry;
        self.entries.push_front((name, value));
    }

    /// The entry at HPACK index `index` (1-based over static then dynamic entries).
    pub fn get(&self, index: usize) -> Option<(&[u8], &[u8])> {
        match index {
            0 => None,
            1..=61 => {
                let (name, value) = STATIC_TABLE[index - 1];
                Some((name.as_bytes(), value.as_bytes()))
            }
            _ => self
                .entries
                .get(index - 62)
                .map(|(name, value)| (name.as_slice(), value.as_slice())),
        }
    }

    fn evict_to(&mut self, limit: usize) {
        while self.size > limit {
            match self.entries.pop_back() {
                Some((name, value)) => self.size -= name.len() + value.len() + ENTRY_OVERHEAD,
                None => {
                    self.size = 0;
                    break;
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn static_entries_are_one_based() {
        let table = DynamicTable::new(4096);
        assert_eq!(table.get(0), None);
        assert_eq!(table.get(2), Some((&b":method"[..], &b"GET"[..])));
        assert_eq!(table.get(61), Some((&b"www-authenticate"[..], &b""[..])));
        assert_eq!(table.get(62), None);
        assert_eq!(static_name_index(b"content-type"), Some(31));
        assert_eq!(static_name_index(b":status"), Some(8));
        assert_eq!(static_name_index(b"grpc-status"), None);
    }

    #[test]
    fn insertion_evicts_oldest_first() {
        // Each entry: 1 + 1 + 32 = 34 bytes; room for two.
        let mut table = DynamicTable::new(70);
        table.insert(b"a".to_vec(), b"1".to_vec());
        table.insert(b"b".to_vec(), b"2".to_vec());
        table.insert(b"c".to_vec(), b"3".to_vec());
        assert_eq!(table.len(), 2);
        assert_eq!(table.get(62), Some((&b"c"[..], &b"3"[..])));
        assert_eq!(table.get(63), Some((&b"b"[..], &b"2"[..])));
        assert_eq!(table.size(), 68);
        table.set_max_size(40);
        assert_eq!(table.len(), 1);
        table.insert(vec![b'x'; 100], Vec::new());
        assert!(table.is_empty());
        assert_eq!(table.size(), 0);
    }
}
