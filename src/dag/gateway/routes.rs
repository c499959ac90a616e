//! What each Envoy listener and host serves for HTTPRoutes: the rules of every accepted route,
//! attached there, in the order the spec gives them (`precedence`). Each entry is one match of one
//! rule with the rule's action. A backend that can't be resolved stays in its rule with its weight
//! as a 500 (the spec: that share of requests is answered 500, never dropped and never sent
//! elsewhere); a rule with no backend to send to answers 500 outright.

use std::collections::{BTreeMap, BTreeSet};

use super::backend_ref::Resolved;
use super::model::ValueMatch;
use super::precedence::{Origin, RuleMatch};
use super::status::{created, resolve_backend, GatewayApiStatus, RouteParentState};
use super::validate::wire_name;
use crate::crd::gateway::httproutes::{
    HttpRouteRules, HttpRouteRulesFilters, HttpRouteRulesFiltersType, HttpRouteRulesMatches,
    HttpRouteRulesMatchesHeadersType, HttpRouteRulesMatchesPathType,
    HttpRouteRulesMatchesQueryParamsType,
};
use crate::crd::gateway::HttpRoute;
use crate::dag::PathMatch;
use crate::store::{ObjectKey, Snapshot};

/// Where one share of a rule's requests goes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    Service(Resolved),
    /// Answered 500, with the reason the backend could not be used.
    Error(String),
}

/// What a rule does with a request.
#[derive(Debug, Clone, PartialEq)]
pub enum Action {
    /// Shares of the traffic by weight (weights of 0 left out; never empty).
    Backends(Vec<(Target, u32)>),
    /// A redirect; the filter as written.
    Redirect(crate::crd::gateway::httproutes::HttpRouteRulesFiltersRequestRedirect),
}

/// One match of one rule, ready to be translated.
#[derive(Debug, Clone, PartialEq)]
pub struct Entry {
    pub order: RuleMatch,
    pub method: Option<String>,
    pub headers: Vec<ValueMatch>,
    pub query_params: Vec<ValueMatch>,
    pub action: Action,
    /// The rule's RequestHeaderModifier, as written.
    pub request_headers:
        Option<crate::crd::gateway::httproutes::HttpRouteRulesFiltersRequestHeaderModifier>,
}

/// Entries by Envoy listener name and host name, each list in the order Envoy must try them.
#[cfg(test)]
pub type RoutingTable = BTreeMap<(String, String), Vec<Entry>>;

/// A `PathPrefix` value without its trailing slash (the spec ignores it), `/` kept.
fn prefix(value: &str) -> String {
    let trimmed = value.trim_end_matches('/');
    if trimmed.is_empty() { "/" } else { trimmed }.to_string()
}

/// A rule's matches; none written means one `PathPrefix /`. A regular-expression path is not served
/// (it is implementation-specific): a route with one is refused in status ([`super::unserved`]), and
/// the match is left out here.
fn rule_matches(rule: &HttpRouteRules) -> Vec<HttpRouteRulesMatches> {
    match rule.matches.as_deref() {
        None | Some([]) => vec![HttpRouteRulesMatches::default()],
        Some(ms) => ms.to_vec(),
    }
}

fn path(m: &HttpRouteRulesMatches) -> Option<PathMatch> {
    let Some(p) = &m.path else {
        return Some(PathMatch::SegmentPrefix("/".to_string()));
    };
    let value = p.value.as_deref().unwrap_or("/");
    match p.r#type {
        Some(HttpRouteRulesMatchesPathType::Exact) => Some(PathMatch::Exact(value.to_string())),
        Some(HttpRouteRulesMatchesPathType::PathPrefix) | None => {
            Some(PathMatch::SegmentPrefix(prefix(value)))
        }
        Some(HttpRouteRulesMatchesPathType::RegularExpression) => None,
    }
}

fn filter_of(
    rule: &HttpRouteRules,
    kind: HttpRouteRulesFiltersType,
) -> Option<&HttpRouteRulesFilters> {
    rule.filters.iter().flatten().find(|f| f.r#type == kind)
}

/// The action of a rule of a route in `namespace`.
fn action(snapshot: &Snapshot, namespace: &str, rule: &HttpRouteRules) -> Action {
    if let Some(redirect) = filter_of(rule, HttpRouteRulesFiltersType::RequestRedirect)
        .and_then(|f| f.request_redirect.clone())
    {
        return Action::Redirect(redirect);
    }
    let shares: Vec<(Target, u32)> = rule
        .backend_refs
        .iter()
        .flatten()
        .map(|b| match resolve_backend(snapshot, namespace, b) {
            Ok((resolved, weight)) => (Target::Service(resolved), weight),
            Err(why) => (
                Target::Error(why.message().to_string()),
                b.weight.and_then(|w| u32::try_from(w).ok()).unwrap_or(1),
            ),
        })
        .filter(|(_, weight)| *weight > 0)
        .collect();
    if shares.is_empty() {
        return Action::Backends(vec![(
            Target::Error("the rule has no backend with a weight above 0".to_string()),
            1,
        )]);
    }
    Action::Backends(shares)
}

fn value_matches<T>(items: Option<&Vec<T>>, f: impl Fn(&T) -> ValueMatch) -> Vec<ValueMatch> {
    items.map(|v| v.iter().map(f).collect()).unwrap_or_default()
}

/// (Gateway, listener name) → the Envoy listener serving it, in `status`'s plan.
pub fn envoy_listeners(status: &GatewayApiStatus) -> BTreeMap<(ObjectKey, String), String> {
    status
        .plan
        .listeners
        .values()
        .flat_map(|l| l.members.iter().map(move |m| (m.clone(), l.name.clone())))
        .collect()
}

/// The (Envoy listener, host) pairs a route's entries go to: those of the listeners each parent
/// that accepted it attached it to. A route attached twice to one host (two listeners sharing a
/// port) is there once.
pub fn placements(
    parents: &[RouteParentState],
    envoy_listeners: &BTreeMap<(ObjectKey, String), String>,
) -> BTreeSet<(String, String)> {
    let mut out = BTreeSet::new();
    for p in parents {
        if !p
            .conditions
            .iter()
            .any(|c| c.type_ == "Accepted" && c.status)
        {
            continue;
        }
        for a in &p.attached {
            let Some(listener) = envoy_listeners.get(&(p.gateway.clone(), a.listener.clone()))
            else {
                continue;
            };
            for host in &a.hostnames {
                out.insert((listener.clone(), host.clone()));
            }
        }
    }
    out
}

/// Each match of each rule of route `key`, with its rule's action, in the order written.
pub fn route_entries(snapshot: &Snapshot, key: &ObjectKey, route: &HttpRoute) -> Vec<Entry> {
    let created = created(&route.metadata);
    let rules = route.spec.rules.as_deref().unwrap_or_default();
    let mut entries = Vec::new();
    for (r, rule) in rules.iter().enumerate() {
        let action = action(snapshot, &key.namespace, rule);
        let request_headers = filter_of(rule, HttpRouteRulesFiltersType::RequestHeaderModifier)
            .and_then(|f| f.request_header_modifier.clone());
        for (m, mat) in rule_matches(rule).iter().enumerate() {
            let Some(path) = path(mat) else { continue };
            let headers = value_matches(mat.headers.as_ref(), |h| ValueMatch {
                name: h.name.to_ascii_lowercase(),
                value: h.value.clone(),
                regex: matches!(
                    h.r#type,
                    Some(HttpRouteRulesMatchesHeadersType::RegularExpression)
                ),
            });
            let query_params = value_matches(mat.query_params.as_ref(), |q| ValueMatch {
                name: q.name.clone(),
                value: q.value.clone(),
                regex: matches!(
                    q.r#type,
                    Some(HttpRouteRulesMatchesQueryParamsType::RegularExpression)
                ),
            });
            let method = mat.method.as_ref().map(wire_name);
            entries.push(Entry {
                order: RuleMatch {
                    path,
                    method: method.is_some(),
                    headers: headers.len(),
                    query_params: query_params.len(),
                    origin: Origin {
                        created,
                        route: key.clone(),
                        rule: r,
                        index: m,
                    },
                },
                method,
                headers,
                query_params,
                action: action.clone(),
                request_headers: request_headers.clone(),
            });
        }
    }
    entries
}

/// The routing table of every accepted route in `status`: the tests' view of what
/// [`super::program::program`] places and orders.
#[cfg(test)]
pub fn routing_table(snapshot: &Snapshot, status: &GatewayApiStatus) -> RoutingTable {
    let envoy_listeners = envoy_listeners(status);
    let mut table = RoutingTable::new();
    for (key, parents) in &status.routes {
        let Some(route) = snapshot.http_routes.get(key) else {
            continue;
        };
        let places = placements(parents, &envoy_listeners);
        if places.is_empty() {
            continue;
        }
        let entries = route_entries(snapshot, key, route);
        for place in places {
            table
                .entry(place)
                .or_default()
                .extend(entries.iter().cloned());
        }
    }
    for list in table.values_mut() {
        super::precedence::sort_by(list, |e| &e.order);
    }
    table
}

#[cfg(test)]
#[path = "routes_tests.rs"]
mod tests;
