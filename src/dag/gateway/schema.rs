//! What the Gateway API CRDs' OpenAPI patterns refuse and Envoy would NACK: header names, header
//! values, host names and regular expressions. The API server applies the patterns; the file
//! source applies none, and a regular expression can be well-formed and still too large for
//! Envoy's RE2 (its program-size limit). An object with such a value gets a status saying so and
//! serves nothing, instead of making Envoy refuse everyone's configuration.

use regex_syntax::hir::{Class, Hir, HirKind};

use crate::crd::gateway::httproutes::{
    HttpRouteRules, HttpRouteRulesFiltersRequestHeaderModifier, HttpRouteRulesMatchesHeadersType,
    HttpRouteRulesMatchesQueryParamsType,
};
use crate::crd::gateway::{GatewaySpec, HttpRouteSpec};

/// Envoy's default `re2.max_program_size.error_level`: a larger program is refused.
pub const RE2_MAX_PROGRAM_SIZE: usize = 100;

/// Whether `name` is an HTTP header name (RFC 7230 token, the CRDs' `HTTPHeaderName` pattern).
fn header_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 256
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b))
}

/// A host name label: lower-case letters, digits and inner hyphens.
fn label(l: &str) -> bool {
    let b = l.as_bytes();
    !b.is_empty()
        && b.len() <= 63
        && b.iter()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || *c == b'-')
        && b[0] != b'-'
        && b[b.len() - 1] != b'-'
}

/// The CRDs' `Hostname` (a leading `*.` allowed) or `PreciseHostname` pattern.
fn hostname(h: &str, wildcard: bool) -> bool {
    let name = match h.strip_prefix("*.") {
        Some(rest) if wildcard => rest,
        _ => h,
    };
    h.len() <= 253 && name.split('.').all(label)
}

/// An estimate of the RE2 program `hir` compiles to, in instructions, never below RE2's own count
/// (so a pattern accepted here is accepted by Envoy) and close to it for the small patterns header
/// matches use: checked against the sizes Envoy 1.40 reports in the tests below.
fn program_size(hir: &Hir) -> usize {
    match hir.kind() {
        HirKind::Empty | HirKind::Look(_) => 1,
        HirKind::Literal(l) => l.0.len(),
        // A range outside ASCII takes several UTF-8 byte-range instructions.
        HirKind::Class(Class::Unicode(c)) => c
            .ranges()
            .iter()
            .map(|r| if r.end().is_ascii() { 1 } else { 2 })
            .sum::<usize>()
            .max(1),
        HirKind::Class(Class::Bytes(c)) => c.ranges().len().max(1),
        // Each copy of the body; each optional copy also a split; the loop or the end one more.
        HirKind::Repetition(r) => {
            let sub = program_size(&r.sub);
            let copies = r.max.unwrap_or(r.min).max(1) as usize;
            let optional = copies.saturating_sub(r.min as usize);
            sub.saturating_mul(copies)
                .saturating_add(optional)
                .saturating_add(1)
        }
        HirKind::Capture(c) => program_size(&c.sub) + 2,
        HirKind::Concat(hs) => hs.iter().map(program_size).sum(),
        HirKind::Alternation(hs) => hs.iter().map(program_size).sum::<usize>() + hs.len(),
    }
}

/// Why `pattern` can't be an Envoy `safe_regex`, if it can't.
fn regex_problem(pattern: &str) -> Option<String> {
    match regex_syntax::parse(pattern) {
        Err(e) => Some(format!(
            "{pattern:?} is not a valid regular expression: {}",
            e.to_string().lines().last().unwrap_or_default()
        )),
        Ok(hir) => {
            // The unanchored start and the match instruction.
            let size = program_size(&hir) + 4;
            (size > RE2_MAX_PROGRAM_SIZE).then(|| {
                format!(
                    "the regular expression {pattern:?} is too large for Envoy (a program of about {size} instructions; RE2's limit is {RE2_MAX_PROGRAM_SIZE})"
                )
            })
        }
    }
}

fn check_header_changes(
    at: &str,
    m: &HttpRouteRulesFiltersRequestHeaderModifier,
    out: &mut Vec<String>,
) {
    let named = m
        .set
        .iter()
        .flatten()
        .map(|h| (&h.name, Some(&h.value)))
        .chain(m.add.iter().flatten().map(|h| (&h.name, Some(&h.value))))
        .chain(m.remove.iter().flatten().map(|n| (n, None)));
    for (name, value) in named {
        if !header_name(name) {
            out.push(format!("{at}: {name:?} is not a valid header name"));
        } else if name.eq_ignore_ascii_case("host") {
            out.push(format!("{at}: the Host header can't be modified"));
        }
        if value.is_some_and(|v| v.bytes().any(|b| matches!(b, b'\r' | b'\n' | 0))) {
            out.push(format!(
                "{at}: the value of header {name:?} holds a line break or NUL"
            ));
        }
    }
}

fn check_rule(r: usize, rule: &HttpRouteRules, out: &mut Vec<String>) {
    for (m, mat) in rule.matches.iter().flatten().enumerate() {
        for (h, header) in mat.headers.iter().flatten().enumerate() {
            let at = format!("spec.rules[{r}].matches[{m}].headers[{h}]");
            if !header_name(&header.name) {
                out.push(format!(
                    "{at}: {:?} is not a valid header name",
                    header.name
                ));
            }
            if header.r#type == Some(HttpRouteRulesMatchesHeadersType::RegularExpression) {
                out.extend(regex_problem(&header.value).map(|p| format!("{at}: {p}")));
            }
        }
        for (q, param) in mat.query_params.iter().flatten().enumerate() {
            let at = format!("spec.rules[{r}].matches[{m}].queryParams[{q}]");
            if !header_name(&param.name) {
                out.push(format!(
                    "{at}: {:?} is not a valid query parameter name",
                    param.name
                ));
            }
            if param.r#type == Some(HttpRouteRulesMatchesQueryParamsType::RegularExpression) {
                out.extend(regex_problem(&param.value).map(|p| format!("{at}: {p}")));
            }
        }
    }
    for (f, filter) in rule.filters.iter().flatten().enumerate() {
        let at = format!("spec.rules[{r}].filters[{f}]");
        if let Some(m) = &filter.request_header_modifier {
            check_header_changes(&at, m, out);
        }
        if let Some(h) = filter
            .request_redirect
            .as_ref()
            .and_then(|r| r.hostname.as_ref())
        {
            if !hostname(h, false) {
                out.push(format!(
                    "{at}.requestRedirect: {h:?} is not a valid host name"
                ));
            }
        }
    }
}

/// The values of `spec` the HTTPRoute CRD's patterns or Envoy refuse.
pub fn http_route(spec: &HttpRouteSpec, out: &mut Vec<String>) {
    for (i, h) in spec.hostnames.iter().flatten().enumerate() {
        if !hostname(h, true) {
            out.push(format!(
                "spec.hostnames[{i}]: {h:?} is not a valid host name"
            ));
        }
    }
    for (r, rule) in spec.rules.iter().flatten().enumerate() {
        check_rule(r, rule, out);
    }
}

/// The listener host names of `spec` the Gateway CRD's pattern refuses.
pub fn gateway(spec: &GatewaySpec, out: &mut Vec<String>) {
    for (i, l) in spec.listeners.iter().enumerate() {
        if let Some(h) = l.hostname.as_ref().filter(|h| !hostname(h, true)) {
            out.push(format!(
                "spec.listeners[{i}].hostname: {h:?} is not a valid host name"
            ));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn host_names_follow_the_crd_patterns() {
        for good in ["a.example.com", "*.example.com", "localhost", "a-b.c1"] {
            assert!(hostname(good, true), "{good}");
        }
        for bad in ["A.example.com", "a..b", "-a.b", "a*.b", "*", "a_b", "*.*.b"] {
            assert!(!hostname(bad, true), "{bad}");
        }
        assert!(!hostname("*.example.com", false));
    }

    #[test]
    fn header_names_are_tokens() {
        assert!(header_name("X-Env"));
        assert!(!header_name("x env"));
        assert!(!header_name(":authority"));
        assert!(!header_name(""));
    }

    #[test]
    fn the_estimate_is_never_below_the_size_envoy_reports() {
        // Program sizes Envoy 1.40 reported (`--mode validate` with
        // `re2.max_program_size.error_level: 1`, which makes it print each one).
        let x50 = "x".repeat(50);
        let measured = [
            ("x", 5),
            (x50.as_str(), 54),
            ("[a-z]{45}", 49),
            ("[a-z]+", 6),
            ("[a-z]*", 5),
            (
                "(canary|beta|gamma|delta|epsilon|zeta|eta|theta|iota|kappa)",
                54,
            ),
            (".{30}", 64),
            ("[^.]{20}", 44),
            ("(?i)abcdefghijklmnopqrstuvwxyz", 30),
            ("^(canary|beta)-[0-9]+$", 17),
            (r"(?i)^[^.:]+\.example\.com(:[0-9]+)?$", 24),
            ("[a-z]{2,10}", 22),
            ("a{1,20}", 43),
        ];
        for (pattern, envoy) in measured {
            let estimate = program_size(&regex_syntax::parse(pattern).unwrap()) + 4;
            assert!(
                estimate >= envoy && estimate <= envoy * 3,
                "{pattern}: estimated {estimate}, Envoy {envoy}"
            );
        }
        // Envoy refuses 97 literal characters (a program of 101) and takes 96.
        assert!(regex_problem(&"x".repeat(97)).is_some());
        assert!(regex_problem(&"x".repeat(96)).is_none());
    }

    #[test]
    fn regexes_must_parse_and_fit_envoys_program_size() {
        assert_eq!(regex_problem("^(canary|beta)-[0-9]+$"), None);
        // What isobar itself sends for wildcard hosts fits.
        assert_eq!(regex_problem(r"(?i)^[^.:]+\.example\.com(:[0-9]+)?$"), None);
        assert!(regex_problem("(unclosed")
            .unwrap()
            .contains("not a valid regular expression"));
        assert!(regex_problem("a{1000}").unwrap().contains("too large"));
        assert!(regex_problem(&"x".repeat(120))
            .unwrap()
            .contains("too large"));
    }
}
