//! Ingress class filtering, as Contour does it: the class annotations first, then
//! `spec.ingressClassName`; an object with no class at all is ours.

use std::collections::BTreeMap;

use k8s_openapi::api::networking::v1::Ingress;

/// The class isobar answers to unless `--ingress-class-name` says otherwise. Contour's name, so objects
/// written for Contour keep working after a switch.
pub const DEFAULT_INGRESS_CLASS: &str = "contour";

/// Annotations that name a class, most specific first.
const CLASS_ANNOTATIONS: [&str; 3] = [
    "projectcontour.io/ingress.class",
    "contour.heptio.com/ingress.class",
    "kubernetes.io/ingress.class",
];

/// The class an object asks for, if any.
pub fn requested_class<'a>(
    annotations: Option<&'a BTreeMap<String, String>>,
    class_name_field: Option<&'a str>,
) -> Option<&'a str> {
    annotations
        .and_then(|a| CLASS_ANNOTATIONS.iter().find_map(|k| a.get(*k)))
        .map(String::as_str)
        .or(class_name_field)
}

/// Whether this controller should act on `ingress`.
pub fn is_ours(ingress: &Ingress, class_name: &str) -> bool {
    let field = ingress
        .spec
        .as_ref()
        .and_then(|s| s.ingress_class_name.as_deref());
    match requested_class(ingress.metadata.annotations.as_ref(), field) {
        None => true,
        Some(c) => c == class_name,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rstest::rstest;

    #[rstest]
    #[case::no_class_is_accepted(None, None, true)]
    #[case::matching_annotation(Some(("kubernetes.io/ingress.class", "contour")), None, true)]
    #[case::other_annotation(Some(("kubernetes.io/ingress.class", "nginx")), None, false)]
    #[case::contour_annotation_wins_over_field(Some(("contour.heptio.com/ingress.class", "contour")), Some("nginx"), true)]
    #[case::matching_field(None, Some("contour"), true)]
    #[case::other_field(None, Some("nginx"), false)]
    fn class_rule(
        #[case] annotation: Option<(&str, &str)>,
        #[case] field: Option<&str>,
        #[case] ours: bool,
    ) {
        let annotations: Option<BTreeMap<String, String>> =
            annotation.map(|(k, v)| [(k.to_string(), v.to_string())].into());
        let got = requested_class(annotations.as_ref(), field)
            .map(|c| c == DEFAULT_INGRESS_CLASS)
            .unwrap_or(true);
        assert_eq!(got, ours);
    }
}
