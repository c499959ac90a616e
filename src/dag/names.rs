//! Validation of the names and paths objects use.

use k8s_openapi::api::networking::v1::HTTPIngressPath;

use super::PathMatch;

/// Checks an Ingress rule host: a lower-case DNS name, or `*.` followed by one (a wildcard covers exactly
/// one label). The empty host means every host and is turned into `*` by the caller.
pub fn validate_host(host: &str) -> Result<(), String> {
    let name = host.strip_prefix("*.").unwrap_or(host);
    if host.len() > 253 {
        return Err(format!("host {host:?} is longer than 253 characters"));
    }
    let valid_label = |l: &str| {
        !l.is_empty()
            && l.len() <= 63
            && l.bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
            && !l.starts_with('-')
            && !l.ends_with('-')
    };
    if !host.is_ascii() {
        return Err(format!(
            "host {host:?} is not ASCII: give an internationalised name in its IDNA (punycode) form, xn--..."
        ));
    }
    if name.split('.').all(valid_label) {
        Ok(())
    } else {
        Err(format!(
            "host {host:?} is not a valid DNS name (lower-case labels, or a leading \"*.\" wildcard)"
        ))
    }
}

/// Turns an Ingress path into a match. A missing `pathType` is treated as `ImplementationSpecific`.
pub fn path_match(path: &HTTPIngressPath) -> Result<PathMatch, String> {
    let text = path.path.as_deref().unwrap_or("");
    let path_type = path.path_type.as_str();
    let text = if text.is_empty() && path_type == "ImplementationSpecific" {
        "/"
    } else {
        text
    };
    if !text.starts_with('/') {
        return Err(format!("path {text:?} must start with \"/\""));
    }
    super::validate::path(text).map_err(|e| format!("path {e}"))?;
    match path_type {
        "Exact" => Ok(PathMatch::Exact(text.to_string())),
        "Prefix" => {
            let trimmed = text.trim_end_matches('/');
            Ok(PathMatch::SegmentPrefix(if trimmed.is_empty() {
                "/".to_string()
            } else {
                trimmed.to_string()
            }))
        }
        "ImplementationSpecific" | "" => Ok(PathMatch::StringPrefix(text.to_string())),
        other => Err(format!(
            "pathType {other:?} is not one of Exact, Prefix, ImplementationSpecific"
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rstest::rstest;

    #[rstest]
    #[case::plain("foo.example.com", true)]
    #[case::wildcard("*.example.com", true)]
    #[case::upper_case("Foo.example.com", false)]
    #[case::wildcard_inside("foo.*.com", false)]
    #[case::port("foo.example.com:80", false)]
    #[case::empty_label("foo..com", false)]
    #[case::leading_dash("-foo.com", false)]
    #[case::idn("b\u{fc}cher.example", false)]
    #[case::punycode("xn--bcher-kva.example", true)]
    #[case::crlf("foo.com\r\nx", false)]
    #[case::label_too_long(&format!("{}.com", "a".repeat(64)), false)]
    fn host_rule(#[case] host: &str, #[case] ok: bool) {
        assert_eq!(validate_host(host).is_ok(), ok, "{host}");
    }

    fn p(path: Option<&str>, path_type: &str) -> HTTPIngressPath {
        HTTPIngressPath {
            path: path.map(str::to_string),
            path_type: path_type.to_string(),
            ..Default::default()
        }
    }

    #[rstest]
    #[case::exact(Some("/foo"), "Exact", Ok(PathMatch::Exact("/foo".into())))]
    #[case::prefix_trailing_slash_ignored(Some("/foo/"), "Prefix", Ok(PathMatch::SegmentPrefix("/foo".into())))]
    #[case::prefix_root(Some("/"), "Prefix", Ok(PathMatch::SegmentPrefix("/".into())))]
    #[case::implementation_specific_is_string_prefix(Some("/foo"), "ImplementationSpecific", Ok(PathMatch::StringPrefix("/foo".into())))]
    #[case::implementation_specific_empty_is_root(None, "ImplementationSpecific", Ok(PathMatch::StringPrefix("/".into())))]
    #[case::relative_path_rejected(Some("foo"), "Prefix", Err(()))]
    #[case::query_rejected(Some("/foo?x"), "Exact", Err(()))]
    #[case::unknown_type_rejected(Some("/foo"), "Regex", Err(()))]
    fn path_rule(
        #[case] path: Option<&str>,
        #[case] path_type: &str,
        #[case] expected: Result<PathMatch, ()>,
    ) {
        assert_eq!(path_match(&p(path, path_type)).map_err(|_| ()), expected);
    }
}
