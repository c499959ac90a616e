//! What the Gateway API CRDs' CEL rules refuse, checked by isobar itself: an API server older than
//! 1.25 ignores `x-kubernetes-validations`, and the file source has no API server at all, so an
//! object a newer cluster would refuse must get a status saying so rather than half-work. Each
//! message is the upstream rule's own, behind the field it is about.

use crate::crd::gateway::httproutes::{
    HttpRouteRules, HttpRouteRulesBackendRefsFilters, HttpRouteRulesFilters,
    HttpRouteRulesMatchesPathType,
};
use crate::crd::gateway::{GatewaySpec, HttpRouteSpec};

/// The fault hook's annotation on an HTTPRoute: its values are not checked. Only with the
/// `fault-hooks` feature (which the e2e tests enable).
#[cfg(feature = "fault-hooks")]
pub const FAULT_UNCHECKED_ROUTE: &str = "isobar.test/fault-unchecked-route";

/// The spec's bound on the matches of all rules of a route together.
pub const MAX_MATCHES_PER_ROUTE: usize = 128;

/// What validation needs of one filter, rule-level or backend-level (two generated types).
struct FilterView {
    kind: String,
    /// The members that are set, by their JSON names.
    set: Vec<&'static str>,
    /// `(type, replaceFullPath set, replacePrefixMatch set)` of a redirect's or a rewrite's path.
    path: Option<(String, bool, bool)>,
}

impl FilterView {
    /// The member a filter of this type must set (`None` for a type without one).
    fn member_of_kind(kind: &str) -> Option<&'static str> {
        Some(match kind {
            "RequestHeaderModifier" => "requestHeaderModifier",
            "ResponseHeaderModifier" => "responseHeaderModifier",
            "RequestMirror" => "requestMirror",
            "RequestRedirect" => "requestRedirect",
            "URLRewrite" => "urlRewrite",
            "ExtensionRef" => "extensionRef",
            "CORS" => "cors",
            _ => return None,
        })
    }
}

/// A serde enum's wire name (`URLRewrite`, not the Rust variant's).
pub(super) fn wire_name<T: serde::Serialize>(v: &T) -> String {
    serde_json::to_value(v)
        .ok()
        .and_then(|v| v.as_str().map(str::to_string))
        .unwrap_or_default()
}

/// `(type, replaceFullPath set, replacePrefixMatch set)` of an optional redirect or rewrite path
/// (four generated types with the same fields).
macro_rules! path_view {
    ($path:expr) => {
        $path.map(|p| {
            (
                wire_name(&p.r#type),
                p.replace_full_path.is_some(),
                p.replace_prefix_match.is_some(),
            )
        })
    };
}

/// The view of a filter of either generated type: the two have the same fields.
macro_rules! filter_view {
    ($f:expr) => {{
        let f = $f;
        let path = path_view!(f.request_redirect.as_ref().and_then(|r| r.path.as_ref()))
            .or_else(|| path_view!(f.url_rewrite.as_ref().and_then(|r| r.path.as_ref())));
        let members = [
            ("requestHeaderModifier", f.request_header_modifier.is_some()),
            (
                "responseHeaderModifier",
                f.response_header_modifier.is_some(),
            ),
            ("requestMirror", f.request_mirror.is_some()),
            ("requestRedirect", f.request_redirect.is_some()),
            ("urlRewrite", f.url_rewrite.is_some()),
            ("extensionRef", f.extension_ref.is_some()),
            ("cors", f.cors.is_some()),
        ];
        FilterView {
            kind: wire_name(&f.r#type),
            set: members
                .into_iter()
                .filter(|(_, s)| *s)
                .map(|(n, _)| n)
                .collect(),
            path,
        }
    }};
}

fn rule_filter(f: &HttpRouteRulesFilters) -> FilterView {
    filter_view!(f)
}

fn backend_filter(f: &HttpRouteRulesBackendRefsFilters) -> FilterView {
    filter_view!(f)
}

/// The problems of one filter list (`at` names it), given how many of the rule's matches are
/// `PathPrefix` ones and how many matches it has.
fn check_filters(
    at: &str,
    filters: &[FilterView],
    prefix_matches: usize,
    matches: usize,
    out: &mut Vec<String>,
) {
    for (i, f) in filters.iter().enumerate() {
        let member = FilterView::member_of_kind(&f.kind);
        for set in &f.set {
            if Some(*set) != member {
                out.push(format!(
                    "{at}[{i}]: filter.{set} must be nil if the filter.type is not {}",
                    f.kind
                ));
            }
        }
        if let Some(m) = member {
            if !f.set.contains(&m) {
                out.push(format!(
                    "{at}[{i}]: filter.{m} must be specified for {} filter.type",
                    f.kind
                ));
            }
        }
        if let Some((kind, full, prefix)) = &f.path {
            match kind.as_str() {
                "ReplaceFullPath" if !full => out.push(format!("{at}[{i}]: replaceFullPath must be specified when type is set to 'ReplaceFullPath'")),
                "ReplacePrefixMatch" if !prefix => out.push(format!("{at}[{i}]: replacePrefixMatch must be specified when type is set to 'ReplacePrefixMatch'")),
                _ => {}
            }
            if *full && kind != "ReplaceFullPath" {
                out.push(format!(
                    "{at}[{i}]: type must be 'ReplaceFullPath' when replaceFullPath is set"
                ));
            }
            if *prefix && kind != "ReplacePrefixMatch" {
                out.push(format!(
                    "{at}[{i}]: type must be 'ReplacePrefixMatch' when replacePrefixMatch is set"
                ));
            }
            if *prefix && !(matches == 1 && prefix_matches == 1) {
                out.push(format!(
                    "{at}[{i}]: When using {} filter with path.replacePrefixMatch, exactly one PathPrefix match must be specified",
                    f.kind
                ));
            }
        }
    }
    for kind in [
        "CORS",
        "RequestHeaderModifier",
        "ResponseHeaderModifier",
        "RequestRedirect",
        "URLRewrite",
    ] {
        if filters.iter().filter(|f| f.kind == kind).count() > 1 {
            out.push(format!("{at}: {kind} filter cannot be repeated"));
        }
    }
    if filters.iter().any(|f| f.kind == "RequestRedirect")
        && filters.iter().any(|f| f.kind == "URLRewrite")
    {
        out.push(format!("{at}: May specify either httpRouteFilterRequestRedirect or httpRouteFilterRequestRewrite, but not both"));
    }
}

/// The problems of a path match's value, for `Exact` and `PathPrefix`.
fn check_path(at: &str, value: &str, out: &mut Vec<String>) {
    if !value.starts_with('/') {
        out.push(format!(
            "{at}: value must be an absolute path and start with '/'"
        ));
    }
    for bad in ["//", "/./", "/../", "%2f", "%2F", "#"] {
        if value.contains(bad) {
            out.push(format!("{at}: must not contain '{bad}'"));
        }
    }
    for bad in ["/..", "/."] {
        if value.ends_with(bad) {
            out.push(format!("{at}: must not end with '{bad}'"));
        }
    }
    let bytes = value.as_bytes();
    let mut i = 0;
    let mut valid = !value.is_empty();
    while i < bytes.len() && valid {
        let c = bytes[i];
        if c == b'%' {
            valid = bytes.get(i + 1).is_some_and(u8::is_ascii_hexdigit)
                && bytes.get(i + 2).is_some_and(u8::is_ascii_hexdigit);
            i += 3;
        } else {
            valid = c.is_ascii_alphanumeric() || b"-/._~!$&'()*+,;=:@".contains(&c);
            i += 1;
        }
    }
    if !valid {
        out.push(format!("{at}: must only contain valid characters (matching ^(?:[-A-Za-z0-9/._~!$&'()*+,;=:@]|[%][0-9a-fA-F]{{2}})+$)"));
    }
}

fn check_rule(r: usize, rule: &HttpRouteRules, out: &mut Vec<String>) {
    let matches = rule.matches.as_deref().unwrap_or_default();
    let mut prefix_matches = 0;
    for (m, mat) in matches.iter().enumerate() {
        let Some(path) = &mat.path else { continue };
        let at = format!("spec.rules[{r}].matches[{m}].path");
        match path.r#type {
            Some(HttpRouteRulesMatchesPathType::RegularExpression) => continue,
            Some(HttpRouteRulesMatchesPathType::PathPrefix) | None => prefix_matches += 1,
            Some(HttpRouteRulesMatchesPathType::Exact) => {}
        }
        check_path(&at, path.value.as_deref().unwrap_or("/"), out);
    }
    // An absent `matches` is one `PathPrefix /` match.
    let (match_count, prefix_count) = if matches.is_empty() {
        (1, 1)
    } else {
        (matches.len(), prefix_matches)
    };
    let filters: Vec<FilterView> = rule.filters.iter().flatten().map(rule_filter).collect();
    check_filters(
        &format!("spec.rules[{r}].filters"),
        &filters,
        prefix_count,
        match_count,
        out,
    );
    let backends = rule.backend_refs.as_deref().unwrap_or_default();
    if filters.iter().any(|f| f.kind == "RequestRedirect") && !backends.is_empty() {
        out.push(format!(
            "spec.rules[{r}]: RequestRedirect filter must not be used together with backendRefs"
        ));
    }
    for (b, backend) in backends.iter().enumerate() {
        let core_service = backend.group.as_deref().unwrap_or("").is_empty()
            && backend.kind.as_deref().unwrap_or("Service") == "Service";
        if core_service && backend.port.is_none() {
            out.push(format!(
                "spec.rules[{r}].backendRefs[{b}]: Must have port for Service reference"
            ));
        }
        let filters: Vec<FilterView> = backend
            .filters
            .iter()
            .flatten()
            .map(backend_filter)
            .collect();
        check_filters(
            &format!("spec.rules[{r}].backendRefs[{b}].filters"),
            &filters,
            prefix_count,
            match_count,
            out,
        );
    }
}

/// What the HTTPRoute CRD's CEL rules and patterns, or Envoy, would refuse in `spec`; empty when
/// nothing.
pub fn http_route(spec: &HttpRouteSpec) -> Vec<String> {
    let mut out = Vec::new();
    let rules = spec.rules.as_deref().unwrap_or_default();
    let matches: usize = rules
        .iter()
        .map(|r| r.matches.as_ref().map_or(0, Vec::len))
        .sum();
    if matches >= MAX_MATCHES_PER_ROUTE {
        out.push(format!(
            "spec.rules: While 16 rules and 64 matches per rule are allowed, the total number of matches across all rules in a route must be less than {MAX_MATCHES_PER_ROUTE}"
        ));
    }
    for (r, rule) in rules.iter().enumerate() {
        check_rule(r, rule, &mut out);
    }
    let parents = spec.parent_refs.as_deref().unwrap_or_default();
    for (i, p) in parents.iter().enumerate() {
        for q in &parents[..i] {
            let same_parent = p.name == q.name
                && p.namespace == q.namespace
                && p.group.as_deref().unwrap_or(super::attach::GROUP)
                    == q.group.as_deref().unwrap_or(super::attach::GROUP)
                && p.kind.as_deref().unwrap_or("Gateway") == q.kind.as_deref().unwrap_or("Gateway");
            if !same_parent {
                continue;
            }
            if p.section_name.is_none() || q.section_name.is_none() {
                out.push(format!("spec.parentRefs[{i}]: sectionName must be specified when parentRefs includes 2 or more references to the same parent"));
            } else if p.section_name == q.section_name && p.port == q.port {
                out.push(format!("spec.parentRefs[{i}]: sectionName must be unique when parentRefs includes 2 or more references to the same parent"));
            }
        }
    }
    super::schema::http_route(spec, &mut out);
    out
}

/// What the Gateway CRD's CEL rules would refuse in `spec` (the listener rules); empty when nothing.
pub fn gateway(spec: &GatewaySpec) -> Vec<String> {
    let mut out = Vec::new();
    let listeners = &spec.listeners;
    for (i, l) in listeners.iter().enumerate() {
        let at = format!("spec.listeners[{i}]");
        let mode = l.tls.as_ref().and_then(|t| t.mode.as_ref()).map(wire_name);
        match l.protocol.as_str() {
            "HTTP" | "TCP" | "UDP" if l.tls.is_some() => out.push(format!(
                "{at}: tls must not be specified for protocols ['HTTP', 'TCP', 'UDP']"
            )),
            "HTTPS" if mode.as_deref().is_some_and(|m| m != "Terminate") => out.push(format!(
                "{at}: tls mode must be Terminate for protocol HTTPS"
            )),
            "TLS" if mode.is_none() => {
                out.push(format!("{at}: tls mode must be set for protocol TLS"))
            }
            _ => {}
        }
        if matches!(l.protocol.as_str(), "TCP" | "UDP") && l.hostname.is_some() {
            out.push(format!(
                "{at}: hostname must not be specified for protocols ['TCP', 'UDP']"
            ));
        }
        if let Some(tls) = &l.tls {
            let terminate = mode.as_deref().is_none_or(|m| m == "Terminate");
            let has_refs = tls.certificate_refs.as_ref().is_some_and(|r| !r.is_empty());
            let has_options = tls.options.as_ref().is_some_and(|o| !o.is_empty());
            if terminate && !has_refs && !has_options {
                out.push(format!(
                    "{at}.tls: certificateRefs or options must be specified when mode is Terminate"
                ));
            }
        }
        if listeners[..i].iter().any(|o| o.name == l.name) {
            out.push(format!(
                "{at}: Listener name must be unique within the Gateway"
            ));
        }
        if listeners[..i]
            .iter()
            .any(|o| o.port == l.port && o.protocol == l.protocol && o.hostname == l.hostname)
        {
            out.push(format!(
                "{at}: Combination of port, protocol and hostname must be unique for each listener"
            ));
        }
    }
    super::schema::gateway(spec, &mut out);
    out
}

#[cfg(test)]
#[path = "validate_tests.rs"]
mod tests;
