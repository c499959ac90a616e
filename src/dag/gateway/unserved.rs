//! What isobar does not serve of an HTTPRoute, so a route asking for it is refused in its status
//! instead of being served without it (a URLRewrite left out sends requests to the wrong path; a
//! backend filter left out changes what the backend sees). The spec lets an implementation refuse a
//! filter it does not support with `Accepted=False`, reason `IncompatibleFilters`.

use super::validate::wire_name;
use crate::crd::gateway::httproutes::{HttpRouteRulesFiltersType, HttpRouteRulesMatchesPathType};
use crate::crd::gateway::HttpRouteSpec;

/// One feature a route asks for that isobar does not serve.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Unserved {
    /// The reason of the route's `Accepted=False`.
    pub reason: &'static str,
    /// The field, and what isobar does not serve.
    pub message: String,
}

/// Everything in `spec` isobar does not serve; empty when it serves all of it.
pub fn unserved(spec: &HttpRouteSpec) -> Vec<Unserved> {
    let mut out = Vec::new();
    let filter = |at: String, kind: String| Unserved {
        reason: "IncompatibleFilters",
        message: format!("{at}: isobar does not serve {kind} filters"),
    };
    for (r, rule) in spec.rules.iter().flatten().enumerate() {
        for (f, rule_filter) in rule.filters.iter().flatten().enumerate() {
            let served = matches!(
                rule_filter.r#type,
                HttpRouteRulesFiltersType::RequestHeaderModifier
                    | HttpRouteRulesFiltersType::RequestRedirect
            );
            if !served {
                let at = format!("spec.rules[{r}].filters[{f}]");
                out.push(filter(at, wire_name(&rule_filter.r#type)));
            }
        }
        for (b, backend) in rule.backend_refs.iter().flatten().enumerate() {
            for (f, backend_filter) in backend.filters.iter().flatten().enumerate() {
                let at = format!("spec.rules[{r}].backendRefs[{b}].filters[{f}]");
                out.push(filter(
                    at,
                    format!("backend-level {}", wire_name(&backend_filter.r#type)),
                ));
            }
        }
        for (m, mat) in rule.matches.iter().flatten().enumerate() {
            let regex = mat.path.as_ref().is_some_and(|p| {
                p.r#type == Some(HttpRouteRulesMatchesPathType::RegularExpression)
            });
            if regex {
                out.push(Unserved {
                    reason: "UnsupportedValue",
                    message: format!(
                        "spec.rules[{r}].matches[{m}].path: isobar does not serve RegularExpression paths"
                    ),
                });
            }
        }
        if rule.timeouts.is_some() {
            out.push(Unserved {
                reason: "UnsupportedValue",
                message: format!("spec.rules[{r}].timeouts: isobar does not serve route timeouts"),
            });
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn spec(rules: serde_json::Value) -> HttpRouteSpec {
        serde_json::from_value(json!({"parentRefs": [{"name": "gw"}], "rules": rules}))
            .expect("a route spec")
    }

    #[test]
    fn core_filters_are_served_and_others_named_with_their_field() {
        let served = spec(json!([{
            "filters": [
                {"type": "RequestHeaderModifier", "requestHeaderModifier": {"set": [{"name": "a", "value": "b"}]}}],
            "backendRefs": [{"name": "web", "port": 80}]},
            {"filters": [{"type": "RequestRedirect", "requestRedirect": {"statusCode": 301}}]}]));
        assert_eq!(unserved(&served), []);
        let refused = spec(json!([{
            "matches": [{"path": {"type": "PathPrefix", "value": "/"}},
                        {"path": {"type": "RegularExpression", "value": "/a.*"}}],
            "filters": [{"type": "URLRewrite", "urlRewrite": {"hostname": "x.example.com"}}],
            "backendRefs": [{"name": "web", "port": 80, "filters": [
                {"type": "ResponseHeaderModifier", "responseHeaderModifier": {"remove": ["x"]}}]}],
            "timeouts": {"request": "5s"}}]));
        let got: Vec<(&str, String)> = unserved(&refused)
            .into_iter()
            .map(|u| (u.reason, u.message))
            .collect();
        assert_eq!(
            got,
            [
                ("IncompatibleFilters", "spec.rules[0].filters[0]: isobar does not serve URLRewrite filters".to_string()),
                ("IncompatibleFilters", "spec.rules[0].backendRefs[0].filters[0]: isobar does not serve backend-level ResponseHeaderModifier filters".to_string()),
                ("UnsupportedValue", "spec.rules[0].matches[1].path: isobar does not serve RegularExpression paths".to_string()),
                ("UnsupportedValue", "spec.rules[0].timeouts: isobar does not serve route timeouts".to_string()),
            ]
        );
    }
}
