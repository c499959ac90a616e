//! The Gateway API program kept between builds, changed route by route.
//!
//! The program falls into a frame (classes, Gateways, their listeners and certificates) and one
//! part per HTTPRoute ([`RouteProgram`]: its parents' statuses, the hosts it serves on, its routes
//! and clusters), which depends on the route, the frame and what the route read, never on other
//! routes. An HTTPRoute edit, or a change of a Service one read, computes that route's part again
//! and re-orders the hosts it left or joined; a change of the frame's inputs (a class, a Gateway, a
//! ReferenceGrant, a Namespace, a certificate) computes everything again, as those are few and
//! rarely edited. Clusters and certificates are counted in the [`Assembly`] with the Ingresses' and
//! IngressRoutes', and the Gateway listeners are kept in its DAG, so a build copies nothing.
//! [`program`](super::gateway::program::program) is the reference this is tested against.

use foldhash::{HashMap, HashSet};
use std::collections::BTreeSet;
use std::sync::Arc;

use super::assembly::Assembly;
use super::gateway::program::{frame, host_routes, route_program, ProgramFrame, RouteProgram};
use super::gateway::status::{GatewayApiStatus, GatewayOptions};
use super::reads::{recording, Read, Readers};
use crate::store::{diff_key, ObjectKey, Snapshot};

/// An Envoy listener's name and one of its hosts.
type Place = (String, String);

#[derive(Debug, Default)]
pub(super) struct GatewayMemo {
    /// The frame of the snapshot the memo is up to date with (a new memo's, of the empty snapshot
    /// it starts from, is the default).
    frame: ProgramFrame,
    frame_reads: HashSet<Read>,
    routes: HashMap<ObjectKey, (RouteProgram, Vec<Read>)>,
    readers: Readers,
    /// The routes placed on each (Envoy listener, host).
    by_place: HashMap<Place, BTreeSet<ObjectKey>>,
    status: GatewayApiStatus,
}

impl GatewayMemo {
    pub fn status(&self) -> &GatewayApiStatus {
        &self.status
    }

    /// Brings the program up to date with `snapshot` (`before` is the snapshot it was up to date
    /// with), changing the Gateway listeners, clusters and certificates of `assembly`'s DAG. Returns
    /// how many parts were computed again.
    pub fn update(
        &mut self,
        before: &Snapshot,
        snapshot: &Snapshot,
        options: &GatewayOptions,
        changed_reads: &HashSet<Read>,
        assembly: &mut Assembly,
    ) -> usize {
        let frame_changed = changed(&before.gateway_classes, &snapshot.gateway_classes)
            || changed(&before.gateways, &snapshot.gateways)
            || changed(&before.reference_grants, &snapshot.reference_grants)
            || changed(&before.namespaces, &snapshot.namespaces)
            || !self.frame_reads.is_disjoint(changed_reads);
        if frame_changed {
            return self.recompute_all(snapshot, options, assembly);
        }
        let mut stale: BTreeSet<ObjectKey> = before
            .http_routes
            .diff(&snapshot.http_routes)
            .map(|d| diff_key(&d).clone())
            .collect();
        stale.extend(self.readers.of(changed_reads).cloned());
        let (mut touched, mut computed) = (BTreeSet::new(), 0);
        for key in &stale {
            self.remove_route(key, assembly, &mut touched);
            if let Some(r) = snapshot.http_routes.get(key) {
                self.add_route(snapshot, key, r, assembly, &mut touched);
                computed += 1;
            }
        }
        self.place(touched, assembly);
        computed
    }

    /// Everything again: the frame, then every route.
    fn recompute_all(
        &mut self,
        snapshot: &Snapshot,
        options: &GatewayOptions,
        assembly: &mut Assembly,
    ) -> usize {
        let keys: Vec<ObjectKey> = self.routes.keys().cloned().collect();
        let mut touched = BTreeSet::new();
        for key in &keys {
            self.remove_route(key, assembly, &mut touched);
        }
        for secret in self.frame.secrets.keys() {
            assembly.release_secret(secret);
        }
        let listeners = assembly.gateway_listeners_mut();
        for name in self.frame.listeners.keys() {
            listeners.remove(name);
        }
        let (frame, reads) = recording(|| frame(snapshot, options));
        for secret in frame.secrets.values() {
            assembly.hold_secret(secret);
        }
        let listeners = assembly.gateway_listeners_mut();
        for (name, l) in &frame.listeners {
            listeners.insert(name.clone(), l.clone());
        }
        self.status = frame.gateways.status.clone();
        self.frame = frame;
        self.frame_reads = reads.into_iter().collect();
        for (key, r) in &snapshot.http_routes {
            self.add_route(snapshot, key, r, assembly, &mut touched);
        }
        self.place(touched, assembly);
        1 + snapshot.http_routes.len()
    }

    fn remove_route(
        &mut self,
        key: &ObjectKey,
        assembly: &mut Assembly,
        touched: &mut BTreeSet<Place>,
    ) {
        let Some((part, reads)) = self.routes.remove(key) else {
            return;
        };
        self.status.remove_route(key);
        for name in part.clusters.keys() {
            assembly.drop_cluster(name);
        }
        for place in part.places {
            if let Some(routes) = self.by_place.get_mut(&place) {
                routes.remove(key);
                if routes.is_empty() {
                    self.by_place.remove(&place);
                }
            }
            touched.insert(place);
        }
        self.readers.remove(key, &reads);
    }

    fn add_route(
        &mut self,
        snapshot: &Snapshot,
        key: &ObjectKey,
        route: &crate::crd::gateway::HttpRoute,
        assembly: &mut Assembly,
        touched: &mut BTreeSet<Place>,
    ) {
        let (part, reads) = recording(|| route_program(snapshot, &self.frame, key, route));
        self.readers.add(key, &reads);
        self.status.add_route(key, part.parents.clone());
        for cluster in part.clusters.values() {
            assembly.use_cluster(cluster);
        }
        for place in &part.places {
            self.by_place
                .entry(place.clone())
                .or_default()
                .insert(key.clone());
            touched.insert(place.clone());
        }
        self.routes.insert(key.clone(), (part, reads));
    }

    /// Orders the routes of each host in `touched` again and writes the listeners they are on.
    fn place(&mut self, touched: BTreeSet<Place>, assembly: &mut Assembly) {
        let listeners = assembly.gateway_listeners_mut();
        for (listener, host) in touched {
            let Some(l) = listeners.get_mut(&listener) else {
                continue;
            };
            let place = (listener, host);
            let routes: Vec<_> = self
                .by_place
                .get(&place)
                .into_iter()
                .flatten()
                .filter_map(|key| self.routes.get(key))
                .map(|(part, _)| part.routes.as_slice())
                .collect();
            let (_, host) = place;
            if routes.is_empty() {
                l.hosts.remove(&host);
            } else {
                l.hosts.insert(host, Arc::new(host_routes(routes)));
            }
        }
    }
}

fn changed<V: PartialEq + Clone>(
    before: &imbl::OrdMap<ObjectKey, V>,
    after: &imbl::OrdMap<ObjectKey, V>,
) -> bool {
    before.diff(after).next().is_some()
}
