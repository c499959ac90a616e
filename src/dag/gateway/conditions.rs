//! The Gateway API status conditions, from what the pure parts decided: a GatewayClass's, a
//! Gateway's and each listener's, and a route's per parent. Plain values: the status writer adds
//! `lastTransitionTime` (kept from the stored condition when type, status and reason are unchanged)
//! and writes only what differs.

use super::attach::{Attached, NotAttached, RouteKind};
use super::backend_ref::Unresolved;
use super::listener::ListenerProblem;
use super::unserved::Unserved;

/// One condition of the spec (`metav1.Condition` without its transition time).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Condition {
    pub type_: &'static str,
    pub status: bool,
    pub reason: &'static str,
    pub message: String,
    pub observed_generation: i64,
}

fn cond(
    type_: &'static str,
    status: bool,
    reason: &'static str,
    message: impl Into<String>,
    generation: i64,
) -> Condition {
    Condition {
        type_,
        status,
        reason,
        message: message.into(),
        observed_generation: generation,
    }
}

/// A GatewayClass whose `controllerName` is isobar's.
pub fn gateway_class(generation: i64) -> Vec<Condition> {
    vec![cond(
        "Accepted",
        true,
        "Accepted",
        "isobar serves this class",
        generation,
    )]
}

/// What a listener's certificate references came to (HTTPS listeners).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CertificateRefs {
    /// Not HTTPS, or every reference resolved to a usable certificate.
    Resolved,
    /// A Secret that does not exist or does not hold a usable certificate and key, or a reference
    /// to another kind.
    Invalid(String),
    /// A Secret in another namespace without a ReferenceGrant there.
    NotPermitted(String),
}

/// Everything decided about one listener.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListenerFacts<'a> {
    pub problem: Option<&'a ListenerProblem>,
    pub invalid_kinds: &'a [RouteKind],
    pub certificates: &'a CertificateRefs,
}

/// A listener's conditions: `Accepted`, `Conflicted`, `ResolvedRefs`, `Programmed`.
pub fn listener(facts: &ListenerFacts<'_>, generation: i64) -> Vec<Condition> {
    let g = generation;
    let (accepted, conflicted) = match facts.problem {
        None => (
            cond("Accepted", true, "Accepted", "", g),
            cond("Conflicted", false, "NoConflicts", "", g),
        ),
        Some(ListenerProblem::UnsupportedProtocol(m)) => (
            cond("Accepted", false, "UnsupportedProtocol", m.clone(), g),
            cond("Conflicted", false, "NoConflicts", "", g),
        ),
        Some(ListenerProblem::PortUnavailable(m)) => (
            cond("Accepted", false, "PortUnavailable", m.clone(), g),
            cond("Conflicted", false, "NoConflicts", "", g),
        ),
        Some(ListenerProblem::ProtocolConflict { port, holder }) => (
            cond("Accepted", true, "Accepted", "", g),
            cond(
                "Conflicted",
                true,
                "ProtocolConflict",
                format!(
                    "port {port} already serves another protocol for listener {:?} of Gateway {}",
                    holder.1, holder.0
                ),
                g,
            ),
        ),
        Some(ListenerProblem::HostnameConflict { port, holder }) => (
            cond("Accepted", true, "Accepted", "", g),
            cond(
                "Conflicted",
                true,
                "HostnameConflict",
                format!(
                    "port {port} already serves this host name for listener {:?} of Gateway {}",
                    holder.1, holder.0
                ),
                g,
            ),
        ),
    };
    let resolved = match (facts.certificates, facts.invalid_kinds) {
        (CertificateRefs::Invalid(m), _) => {
            cond("ResolvedRefs", false, "InvalidCertificateRef", m.clone(), g)
        }
        (CertificateRefs::NotPermitted(m), _) => {
            cond("ResolvedRefs", false, "RefNotPermitted", m.clone(), g)
        }
        (CertificateRefs::Resolved, []) => cond("ResolvedRefs", true, "ResolvedRefs", "", g),
        (CertificateRefs::Resolved, kinds) => cond(
            "ResolvedRefs",
            false,
            "InvalidRouteKinds",
            format!(
                "route kinds not served: {}",
                kinds
                    .iter()
                    .map(|k| format!("{}/{}", k.group, k.kind))
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
            g,
        ),
    };
    let serving =
        accepted.status && !conflicted.status && *facts.certificates == CertificateRefs::Resolved;
    let programmed = if serving {
        cond("Programmed", true, "Programmed", "", g)
    } else {
        cond(
            "Programmed",
            false,
            "Invalid",
            "the listener serves nothing; see its other conditions",
            g,
        )
    };
    vec![accepted, conflicted, resolved, programmed]
}

/// A Gateway's conditions from its listeners' (`Accepted` and `Programmed`): accepted while any
/// listener is, with reason `ListenersNotValid` when some are not.
pub fn gateway(listeners: &[Vec<Condition>], generation: i64) -> Vec<Condition> {
    let is =
        |conditions: &Vec<Condition>, t: &str| conditions.iter().any(|c| c.type_ == t && c.status);
    let programmed = listeners.iter().filter(|l| is(l, "Programmed")).count();
    let all = listeners.len();
    let accepted = if programmed == all {
        cond("Accepted", true, "Accepted", "", generation)
    } else {
        cond(
            "Accepted",
            programmed > 0,
            "ListenersNotValid",
            format!(
                "{} of {all} listeners are not valid; see status.listeners",
                all - programmed
            ),
            generation,
        )
    };
    let programmed = if programmed > 0 {
        cond("Programmed", true, "Programmed", "", generation)
    } else {
        cond(
            "Programmed",
            false,
            "Invalid",
            "no listener can be served",
            generation,
        )
    };
    vec![accepted, programmed]
}

/// A route's conditions for one parent: `Accepted` from attachment (or the refusals a newer API
/// server's validation would make, or what isobar does not serve), `ResolvedRefs` from its backends.
pub fn route_parent(
    attachment: &Result<Vec<Attached>, NotAttached>,
    invalid: &[String],
    unserved: &[Unserved],
    unresolved: &[Unresolved],
    generation: i64,
) -> Vec<Condition> {
    let g = generation;
    let accepted = if !invalid.is_empty() {
        cond("Accepted", false, "UnsupportedValue", invalid.join("; "), g)
    } else if let Some(first) = unserved.first() {
        let messages: Vec<&str> = unserved.iter().map(|u| u.message.as_str()).collect();
        cond("Accepted", false, first.reason, messages.join("; "), g)
    } else {
        match attachment {
            Ok(_) => cond("Accepted", true, "Accepted", "", g),
            Err(NotAttached::NoMatchingParent(m)) => {
                cond("Accepted", false, "NoMatchingParent", m.clone(), g)
            }
            Err(NotAttached::NotAllowedByListeners(m)) => {
                cond("Accepted", false, "NotAllowedByListeners", m.clone(), g)
            }
            Err(NotAttached::NoMatchingListenerHostname(m)) => cond(
                "Accepted",
                false,
                "NoMatchingListenerHostname",
                m.clone(),
                g,
            ),
        }
    };
    let resolved = match unresolved.first() {
        None => cond("ResolvedRefs", true, "ResolvedRefs", "", g),
        Some(first) => {
            let reason = match first {
                Unresolved::InvalidKind(_) => "InvalidKind",
                Unresolved::RefNotPermitted(_) => "RefNotPermitted",
                Unresolved::BackendNotFound(_) | Unresolved::Invalid(_) => "BackendNotFound",
            };
            let messages: Vec<&str> = unresolved.iter().map(Unresolved::message).collect();
            cond("ResolvedRefs", false, reason, messages.join("; "), g)
        }
    };
    vec![accepted, resolved]
}

/// Whether a condition is in a bad state: `Conflicted` true, any other false.
pub fn is_bad(c: &Condition) -> bool {
    if c.type_ == "Conflicted" {
        c.status
    } else {
        !c.status
    }
}

/// `Type=Status`, with `(Reason: message)` for a condition in a bad state.
pub fn brief(conditions: &[Condition]) -> String {
    conditions
        .iter()
        .map(|c| {
            let status = if c.status { "True" } else { "False" };
            if is_bad(c) {
                format!("{}={status} ({}: {})", c.type_, c.reason, c.message)
            } else {
                format!("{}={status}", c.type_)
            }
        })
        .collect::<Vec<_>>()
        .join(" ")
}

#[cfg(test)]
#[path = "conditions_tests.rs"]
mod tests;
