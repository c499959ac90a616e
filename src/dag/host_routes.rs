//! The routes a build holds for one host, by path, while candidates are applied. Most hosts have
//! one or two routes: those sit inline and are found by a scan. Past [`SCAN`] they move to a
//! B-tree, so a host of thousands of routes keeps O(log n) lookups. A B-tree for every host was a
//! node allocated per host per build, and about a fifth of the assembly's time at 10,000 hosts.

use std::collections::BTreeMap;
use std::sync::Arc;

use smallvec::SmallVec;

use super::{PathMatch, Route};

/// The most routes looked up by a scan.
const SCAN: usize = 8;

#[derive(Debug)]
pub(super) enum HostRoutes<'a> {
    /// No path twice.
    Few(SmallVec<[(&'a PathMatch, &'a Arc<Route>); 2]>),
    Many(BTreeMap<&'a PathMatch, &'a Arc<Route>>),
}

impl Default for HostRoutes<'_> {
    fn default() -> Self {
        HostRoutes::Few(SmallVec::new())
    }
}

impl<'a> HostRoutes<'a> {
    pub fn get(&self, path: &PathMatch) -> Option<&'a Arc<Route>> {
        match self {
            HostRoutes::Few(few) => few.iter().find(|(p, _)| *p == path).map(|(_, r)| *r),
            HostRoutes::Many(many) => many.get(path).copied(),
        }
    }

    pub fn len(&self) -> usize {
        match self {
            HostRoutes::Few(few) => few.len(),
            HostRoutes::Many(many) => many.len(),
        }
    }

    /// Adds the route of `path`, or replaces it.
    pub fn insert(&mut self, path: &'a PathMatch, route: &'a Arc<Route>) {
        match self {
            HostRoutes::Few(few) => {
                if let Some(held) = few.iter_mut().find(|(p, _)| *p == path) {
                    held.1 = route;
                } else if few.len() < SCAN {
                    few.push((path, route));
                } else {
                    let mut many: BTreeMap<_, _> = few.drain(..).collect();
                    many.insert(path, route);
                    *self = HostRoutes::Many(many);
                }
            }
            HostRoutes::Many(many) => {
                many.insert(path, route);
            }
        }
    }

    /// The routes, in no particular order.
    pub fn routes(&self) -> Vec<&'a Arc<Route>> {
        match self {
            HostRoutes::Few(few) => few.iter().map(|(_, r)| *r).collect(),
            HostRoutes::Many(many) => many.values().copied().collect(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::ObjectKey;

    fn route(path: &PathMatch, cluster: &str) -> Arc<Route> {
        Arc::new(Route::new(
            path.clone(),
            vec![super::super::WeightedCluster {
                name: cluster.to_string(),
                weight: 1,
                session_affinity: false,
            }],
            ObjectKey::new("default", "x"),
        ))
    }

    /// Past the scan limit the routes move to the B-tree; every route stays findable, a path given
    /// again replaces its route, and none is lost or doubled on the way.
    #[rstest::rstest]
    fn routes_stay_findable_and_replaceable_across_the_scan_limit(
        #[values(1, SCAN, SCAN + 1, 3 * SCAN)] n: usize,
    ) {
        let paths: Vec<PathMatch> = (0..n)
            .map(|i| PathMatch::SegmentPrefix(format!("/p{i}")))
            .collect();
        let first: Vec<Arc<Route>> = paths.iter().map(|p| route(p, "a")).collect();
        let second: Vec<Arc<Route>> = paths.iter().map(|p| route(p, "b")).collect();
        let mut routes = HostRoutes::default();
        for (p, r) in paths.iter().zip(&first) {
            routes.insert(p, r);
        }
        assert_eq!(matches!(routes, HostRoutes::Many(_)), n > SCAN);
        for (p, r) in paths.iter().zip(&second).step_by(2) {
            routes.insert(p, r);
        }
        assert_eq!(routes.len(), n);
        for (i, p) in paths.iter().enumerate() {
            let expected = if i % 2 == 0 { &second[i] } else { &first[i] };
            assert!(Arc::ptr_eq(routes.get(p).expect("held"), expected), "{p:?}");
        }
        assert!(routes.get(&PathMatch::Exact("/p0".into())).is_none());
        let mut held: Vec<String> = routes
            .routes()
            .iter()
            .map(|r| r.path.path().to_string())
            .collect();
        held.sort();
        let mut given: Vec<String> = paths.iter().map(|p| p.path().to_string()).collect();
        given.sort();
        assert_eq!(held, given);
    }
}
