//! A contribution's routes by (host, path). While an object's routes are added they sit in a B-tree,
//! so inserting stays O(log n) however many routes one object has; once the contribution is finished
//! they are sealed into a sorted slice of exactly their number. Contributions are kept between builds
//! and most have one route, where a B-tree node would have room for eleven: at 10,000 Ingresses the
//! spare slots were about 8 MB.

use std::collections::{btree_map, BTreeMap};
use std::sync::Arc;

use super::{PathMatch, Route};

/// Where a route serves: its host and path.
pub(super) type RouteKey = (String, PathMatch);

#[derive(Debug, Clone)]
pub(super) enum RouteTable {
    Open(BTreeMap<RouteKey, Arc<Route>>),
    /// Sorted by key, no key twice.
    Sealed(Box<[(RouteKey, Arc<Route>)]>),
}

impl Default for RouteTable {
    fn default() -> Self {
        RouteTable::Open(BTreeMap::new())
    }
}

impl RouteTable {
    /// The place of `key`, to read or fill with one lookup (a sealed table opens again).
    pub fn entry(&mut self, key: RouteKey) -> btree_map::Entry<'_, RouteKey, Arc<Route>> {
        if let RouteTable::Sealed(slice) = self {
            *self = RouteTable::Open(std::mem::take(slice).into_vec().into_iter().collect());
        }
        match self {
            RouteTable::Open(map) => map.entry(key),
            RouteTable::Sealed(_) => unreachable!("opened above"),
        }
    }

    /// Stores the routes in a slice of exactly their number.
    pub fn seal(&mut self) {
        if let RouteTable::Open(map) = self {
            *self = RouteTable::Sealed(std::mem::take(map).into_iter().collect());
        }
    }

    pub fn len(&self) -> usize {
        match self {
            RouteTable::Open(map) => map.len(),
            RouteTable::Sealed(slice) => slice.len(),
        }
    }

    /// In key order.
    pub fn iter(&self) -> Iter<'_> {
        match self {
            RouteTable::Open(map) => Iter::Open(map.iter()),
            RouteTable::Sealed(slice) => Iter::Sealed(slice.iter()),
        }
    }

    pub fn keys(&self) -> impl Iterator<Item = &RouteKey> {
        self.iter().map(|(k, _)| k)
    }
}

/// Open or sealed, the same routes are the same table.
impl PartialEq for RouteTable {
    fn eq(&self, other: &Self) -> bool {
        self.iter().eq(other.iter())
    }
}

impl<'a> IntoIterator for &'a RouteTable {
    type Item = (&'a RouteKey, &'a Arc<Route>);
    type IntoIter = Iter<'a>;

    fn into_iter(self) -> Iter<'a> {
        self.iter()
    }
}

pub(super) enum Iter<'a> {
    Open(btree_map::Iter<'a, RouteKey, Arc<Route>>),
    Sealed(std::slice::Iter<'a, (RouteKey, Arc<Route>)>),
}

impl<'a> Iterator for Iter<'a> {
    type Item = (&'a RouteKey, &'a Arc<Route>);

    fn next(&mut self) -> Option<Self::Item> {
        match self {
            Iter::Open(i) => i.next(),
            Iter::Sealed(i) => i.next().map(|(k, v)| (k, v)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::ObjectKey;

    fn route(path: &str) -> (RouteKey, Arc<Route>) {
        let path = PathMatch::SegmentPrefix(path.into());
        let r = Route::new(path.clone(), Vec::new(), ObjectKey::new("ns", "o"));
        (("h".to_string(), path), Arc::new(r))
    }

    #[test]
    fn sealed_lists_what_open_did_in_the_same_order() {
        let mut table = RouteTable::default();
        for p in ["/b", "/a", "/c", "/a"] {
            let (k, r) = route(p);
            table.entry(k).insert_entry(r);
        }
        let open = table.clone();
        table.seal();
        assert!(matches!(table, RouteTable::Sealed(ref s) if s.len() == 3));
        assert_eq!(table, open);
        let paths: Vec<&str> = table.keys().map(|(_, p)| p.path()).collect();
        assert_eq!(paths, ["/a", "/b", "/c"]);
    }

    #[test]
    fn a_sealed_table_takes_more_routes() {
        let mut table = RouteTable::default();
        let (k, r) = route("/a");
        table.entry(k).insert_entry(r);
        table.seal();
        let (k, r) = route("/b");
        table.entry(k).insert_entry(r);
        assert_eq!(table.len(), 2);
        let paths: Vec<&str> = table.keys().map(|(_, p)| p.path()).collect();
        assert_eq!(paths, ["/a", "/b"]);
    }
}
