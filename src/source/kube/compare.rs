//! Whether an update changes anything isobar reads. Status, resourceVersion, managedFields and the
//! like change all the time (isobar's own status writes among them) and must not cause rebuilds.

use serde::Serialize;

/// The object without the fields isobar never reads.
fn relevant<T: Serialize>(object: &T) -> serde_json::Value {
    let mut value = serde_json::to_value(object).unwrap_or(serde_json::Value::Null);
    if let Some(map) = value.as_object_mut() {
        map.remove("status");
        if let Some(meta) = map.get_mut("metadata").and_then(|m| m.as_object_mut()) {
            for field in [
                "resourceVersion",
                "managedFields",
                "generation",
                "uid",
                "selfLink",
            ] {
                meta.remove(field);
            }
            if let Some(annotations) = meta.get_mut("annotations").and_then(|a| a.as_object_mut()) {
                annotations.remove("kubectl.kubernetes.io/last-applied-configuration");
                annotations.remove("endpoints.kubernetes.io/last-change-trigger-time");
            }
        }
    }
    value
}

/// Whether `a` and `b` differ in anything but status and bookkeeping.
pub fn same<T: Serialize>(a: &T, b: &T) -> bool {
    relevant(a) == relevant(b)
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::networking::v1::{Ingress, IngressLoadBalancerStatus, IngressStatus};

    #[test]
    fn status_and_resource_version_are_not_changes() {
        let mut a = Ingress::default();
        a.metadata.name = Some("x".into());
        let mut b = a.clone();
        b.metadata.resource_version = Some("42".into());
        b.status = Some(IngressStatus {
            load_balancer: Some(IngressLoadBalancerStatus::default()),
        });
        assert!(same(&a, &b));
        b.metadata.labels = Some([("k".to_string(), "v".to_string())].into());
        assert!(!same(&a, &b));
    }
}
