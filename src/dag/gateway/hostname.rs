//! Gateway API host names: a listener's `hostname` and a route's `hostnames`, and what they leave
//! when put together.
//!
//! A name starting with `*.` is a suffix match over one or more labels: `*.example.com` matches
//! `a.example.com` and `a.b.example.com`, never `example.com` (this differs from Ingress, whose
//! wildcard covers exactly one label; Envoy's own `*.` domains behave like Gateway API's).

/// Whether `pattern` (a name or a `*.` wildcard) matches `name` (a name or a wildcard). A wildcard
/// `name` is matched when every name it stands for is: `*.example.com` matches `*.a.example.com`.
pub fn matches(pattern: &str, name: &str) -> bool {
    // `suffix` keeps its leading dot: `*.example.com` → `.example.com`.
    let Some(suffix) = pattern.strip_prefix('*') else {
        return pattern == name;
    };
    match name.strip_prefix('*') {
        Some(name_suffix) => name_suffix.ends_with(suffix),
        // At least one character before the suffix's dot: a whole label.
        None => name.len() > suffix.len() && name.ends_with(suffix),
    }
}

/// The host names a route serves on a listener, in the route's order without repeats:
/// * no listener host name: the route's host names, or `*` (every host) if it has none;
/// * no route host names: the listener's;
/// * both: of each route host name that intersects the listener's, the narrower of the two;
///   the others are ignored. An empty result means the route does not attach to the listener
///   (status reason `NoMatchingListenerHostname`).
pub fn intersect(listener: Option<&str>, route: &[String]) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    let mut push = |h: &str| {
        if !out.iter().any(|o| o == h) {
            out.push(h.to_string());
        }
    };
    match (listener, route.is_empty()) {
        (None, true) => push("*"),
        (None, false) => route.iter().for_each(|h| push(h)),
        (Some(l), true) => push(l),
        (Some(l), false) => {
            for h in route {
                if matches(l, h) {
                    push(h);
                } else if matches(h, l) {
                    push(l);
                }
            }
        }
    }
    out
}

/// Precedence between host names serving the same request: an exact name before any wildcard, then
/// more characters first (the spec's "largest number of characters in a matching non-wildcard
/// hostname, then in a matching hostname"). Envoy's virtual-host selection orders domains the same
/// way, so this is used to order status and views, not to route.
pub fn precedence(host: &str) -> (bool, std::cmp::Reverse<usize>) {
    (host.starts_with('*'), std::cmp::Reverse(host.len()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v(names: &[&str]) -> Vec<String> {
        names.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn a_wildcard_is_a_suffix_over_one_or_more_labels() {
        assert!(matches("*.example.com", "a.example.com"));
        assert!(matches("*.example.com", "a.b.example.com"));
        assert!(!matches("*.example.com", "example.com"));
        assert!(!matches("*.example.com", ".example.com"));
        assert!(!matches("*.example.com", "aexample.com"));
        assert!(!matches("*.example.com", "a.example.net"));
        assert!(matches("*.example.com", "*.a.example.com"));
        assert!(matches("*.example.com", "*.example.com"));
        assert!(!matches("*.a.example.com", "*.example.com"));
        assert!(!matches("a.example.com", "*.example.com"));
        assert!(matches("a.example.com", "a.example.com"));
        assert!(!matches("a.example.com", "b.example.com"));
    }

    #[test]
    fn the_spec_examples_of_listener_and_route_hostnames() {
        // A listener `test.example.com` takes routes with no host names, or with
        // `test.example.com` or `*.example.com`.
        let l = Some("test.example.com");
        assert_eq!(intersect(l, &[]), v(&["test.example.com"]));
        assert_eq!(
            intersect(l, &v(&["*.example.com"])),
            v(&["test.example.com"])
        );
        assert_eq!(
            intersect(l, &v(&["test.example.com"])),
            v(&["test.example.com"])
        );
        assert!(intersect(l, &v(&["other.example.com"])).is_empty());
        // A listener `*.example.com` takes `*.example.com`, `test.example.com`,
        // `foo.test.example.com`; not `example.com` or `test.example.net`, which are ignored.
        let l = Some("*.example.com");
        assert_eq!(
            intersect(
                l,
                &v(&[
                    "*.example.com",
                    "test.example.com",
                    "foo.test.example.com",
                    "example.com",
                    "test.example.net"
                ])
            ),
            v(&["*.example.com", "test.example.com", "foo.test.example.com"])
        );
        assert!(intersect(l, &v(&["example.com", "test.example.net"])).is_empty());
        // A narrower listener wildcard under a route wildcard: the listener's.
        assert_eq!(
            intersect(Some("*.a.example.com"), &v(&["*.example.com"])),
            v(&["*.a.example.com"])
        );
    }

    #[test]
    fn no_listener_hostname_serves_the_routes_or_every_host() {
        assert_eq!(intersect(None, &[]), v(&["*"]));
        assert_eq!(
            intersect(
                None,
                &v(&["a.example.com", "*.b.example.com", "a.example.com"])
            ),
            v(&["a.example.com", "*.b.example.com"])
        );
    }

    #[test]
    fn exact_names_precede_wildcards_then_longer_names() {
        let mut hosts = v(&[
            "*.example.com",
            "a.example.com",
            "*.a.example.com",
            "ab.example.com",
        ]);
        hosts.sort_by_key(|h| precedence(h));
        assert_eq!(
            hosts,
            v(&[
                "ab.example.com",
                "a.example.com",
                "*.a.example.com",
                "*.example.com"
            ])
        );
    }
}
