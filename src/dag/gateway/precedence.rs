//! The order of HTTPRoute matches on one listener and host: the spec's precedence, across every route
//! attached there, so that Envoy's first-match picks what the spec says wins.
//!
//! The spec (HTTPRouteRule, "Proxy or Load Balancer routing configuration generated from HTTPRoutes
//! MUST prioritize matches based on the following criteria, continuing on ties"):
//! 1. an `Exact` path match;
//! 2. a `PathPrefix` match with the most characters;
//! 3. a method match;
//! 4. the most header matches;
//! 5. the most query-parameter matches.
//!
//! Ties across routes go to the oldest route (creation time), then to the first in
//! `{namespace}/{name}` order; within a route, to the first rule, then the first match, in the order
//! written.

use std::cmp::Reverse;

use crate::dag::PathMatch;
use crate::store::ObjectKey;

/// One match of one rule, reduced to what orders it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RuleMatch {
    /// [`PathMatch::Exact`] or [`PathMatch::SegmentPrefix`] (a `PathPrefix` without its trailing
    /// slash: the spec ignores it).
    pub path: PathMatch,
    pub method: bool,
    pub headers: usize,
    pub query_params: usize,
    pub origin: Origin,
}

/// Where a match was written: the tie-breakers, in the spec's order.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Origin {
    /// The route's creation time (seconds since the epoch); an object without one (the file source's)
    /// counts as newest.
    pub created: i64,
    pub route: ObjectKey,
    pub rule: usize,
    pub index: usize,
}

impl Origin {
    /// The creation time of an object that has none.
    pub const UNKNOWN_CREATION: i64 = i64::MAX;
}

/// The sort key: smaller goes first.
pub fn precedence(m: &RuleMatch) -> impl Ord + '_ {
    let (exact, len) = match &m.path {
        PathMatch::Exact(p) => (true, p.len()),
        PathMatch::SegmentPrefix(p) | PathMatch::StringPrefix(p) => (false, p.len()),
    };
    (
        Reverse(exact),
        Reverse(len),
        Reverse(m.method),
        Reverse(m.headers),
        Reverse(m.query_params),
        &m.origin,
    )
}

/// Sorts matches into the order Envoy must try them.
pub fn sort(matches: &mut [RuleMatch]) {
    sort_by(matches, |m| m);
}

/// Sorts items by the match each holds.
pub fn sort_by<T>(items: &mut [T], key: impl Fn(&T) -> &RuleMatch) {
    items.sort_by(|a, b| precedence(key(a)).cmp(&precedence(key(b))));
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use proptest::prelude::*;

    use super::*;

    fn m(path: PathMatch, method: bool, headers: usize, created: i64, route: &str) -> RuleMatch {
        RuleMatch {
            path,
            method,
            headers,
            query_params: 0,
            origin: Origin {
                created,
                route: ObjectKey::new("ns", route),
                rule: 0,
                index: 0,
            },
        }
    }

    fn routes(ms: &[RuleMatch]) -> Vec<&str> {
        ms.iter().map(|m| &*m.origin.route.name).collect()
    }

    #[test]
    fn the_spec_criteria_in_order() {
        let prefix = |p: &str| PathMatch::SegmentPrefix(p.to_string());
        let mut ms = vec![
            m(prefix("/"), false, 0, 1, "root"),
            m(prefix("/a"), false, 0, 1, "short"),
            m(prefix("/a"), true, 0, 1, "method"),
            m(prefix("/a"), false, 2, 1, "headers"),
            m(prefix("/a"), false, 2, 0, "older"),
            m(PathMatch::Exact("/".to_string()), false, 0, 9, "exact"),
            m(prefix("/abc"), false, 0, 9, "long"),
        ];
        sort(&mut ms);
        assert_eq!(
            routes(&ms),
            ["exact", "long", "method", "older", "headers", "short", "root"]
        );
    }

    #[test]
    fn equal_matches_go_to_the_first_route_by_name_then_rule_then_match() {
        let path = PathMatch::SegmentPrefix("/".to_string());
        let at = |route: &str, rule, index| RuleMatch {
            origin: Origin {
                rule,
                index,
                ..m(path.clone(), false, 0, 5, route).origin
            },
            ..m(path.clone(), false, 0, 5, route)
        };
        let mut ms = vec![at("b", 0, 0), at("a", 1, 0), at("a", 0, 1), at("a", 0, 0)];
        sort(&mut ms);
        let order: Vec<_> = ms
            .iter()
            .map(|m| (&*m.origin.route.name, m.origin.rule, m.origin.index))
            .collect();
        assert_eq!(order, [("a", 0, 0), ("a", 0, 1), ("a", 1, 0), ("b", 0, 0)]);
    }

    /// A generated match: the header names it requires (a set, so coverage can be decided).
    #[derive(Debug, Clone)]
    struct Generated {
        path: PathMatch,
        method: Option<u8>,
        headers: BTreeSet<u8>,
    }

    fn generated() -> impl Strategy<Value = Generated> {
        let segments = prop::collection::vec(prop::sample::select(vec!["a", "b", "ab"]), 0..3);
        (
            any::<bool>(),
            segments,
            prop::option::of(0u8..2),
            prop::collection::btree_set(0u8..3, 0..3),
        )
            .prop_map(|(exact, segs, method, headers)| {
                let path = format!("/{}", segs.join("/"));
                Generated {
                    path: if exact {
                        PathMatch::Exact(path)
                    } else {
                        PathMatch::SegmentPrefix(path)
                    },
                    method,
                    headers,
                }
            })
    }

    /// Whether every request `narrow` matches is matched by `wide` too.
    fn covers(wide: &Generated, narrow: &Generated) -> bool {
        let path = match (&wide.path, &narrow.path) {
            (PathMatch::Exact(w), PathMatch::Exact(n)) => w == n,
            (PathMatch::SegmentPrefix(w), PathMatch::Exact(n) | PathMatch::SegmentPrefix(n)) => {
                w == "/" || n == w || n.starts_with(&format!("{w}/"))
            }
            _ => false,
        };
        let method = wide.method.is_none() || wide.method == narrow.method;
        path && method && wide.headers.is_subset(&narrow.headers)
    }

    proptest! {
        /// A route never shadows a more specific one: whenever a match covers another (every
        /// request the second takes, the first would take too), the covered one goes first unless
        /// the two are the same match, where the oldest route wins.
        #[test]
        fn a_match_never_shadows_a_narrower_one(
            gen in prop::collection::vec((generated(), 0i64..3), 1..12),
        ) {
            let mut ms: Vec<(RuleMatch, Generated)> = gen
                .iter()
                .enumerate()
                .map(|(i, (g, created))| {
                    let rule = RuleMatch {
                        path: g.path.clone(),
                        method: g.method.is_some(),
                        headers: g.headers.len(),
                        query_params: 0,
                        origin: Origin {
                            created: *created,
                            route: ObjectKey::new("ns", format!("r{i:02}")),
                            rule: 0,
                            index: 0,
                        },
                    };
                    (rule, g.clone())
                })
                .collect();
            ms.sort_by(|(a, _), (b, _)| precedence(a).cmp(&precedence(b)));
            for (i, (first, fg)) in ms.iter().enumerate() {
                for (later, lg) in &ms[i + 1..] {
                    let same = covers(fg, lg) && covers(lg, fg);
                    prop_assert!(
                        !covers(fg, lg) || same,
                        "{first:?} shadows the narrower {later:?}"
                    );
                    if same {
                        prop_assert!(first.origin <= later.origin);
                    }
                }
            }
        }
    }
}
