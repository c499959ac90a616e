#![cfg(feature = "e2e")]
//! Editing the manifests directory re-routes a running Envoy over xDS (no restart); a file that
//! doesn't parse, or an invalid Ingress, is reported and leaves the good routing alone.

mod common;

use isobar_harness::wait_for_async;

use common::{
    debug_status, envoy_stat, get, ingress_yaml, isobar_metric, metric, wait_envoy_acked_current,
    wait_routed_to, wait_status, Fixture, CONVERGE,
};

/// RDS updates Envoy applied to the HTTP listener's route configuration.
const RDS_UPDATES: &str = "http.ingress_http.rds.ingress_http.update_success";

#[tokio::test]
async fn edits_reroute_add_and_remove_hosts_without_restarting_envoy() {
    let mut f = Fixture::new();
    f.backend("a");
    f.backend("b");
    f.write(
        "app.yaml",
        &ingress_yaml("app", Some("app.example.com"), &[("/", "Prefix", "a")]),
    );
    let stack = f.start_stack().await;
    wait_routed_to(&stack, "app.example.com", "/x", "a").await;
    let pid = stack.envoy.pid();
    let rds_before = envoy_stat(&stack, RDS_UPDATES).await;
    let uptime_before = envoy_stat(&stack, "server.uptime").await;

    // Switch the path to b.
    f.write(
        "app.yaml",
        &ingress_yaml("app", Some("app.example.com"), &[("/", "Prefix", "b")]),
    );
    wait_routed_to(&stack, "app.example.com", "/x", "b").await;

    // Add a host.
    f.write(
        "new.yaml",
        &ingress_yaml("new", Some("new.example.com"), &[("/", "Prefix", "a")]),
    );
    wait_routed_to(&stack, "new.example.com", "/", "a").await;
    assert_eq!(
        get(&stack, "app.example.com", "/x")
            .await
            .backend()
            .as_deref(),
        Some("b")
    );

    // Remove an Ingress: its host is gone, the other stays.
    f.remove("app.yaml");
    wait_status(&stack, "app.example.com", "/x", 404).await;
    wait_routed_to(&stack, "new.example.com", "/", "a").await;

    // The same Envoy process applied three RDS updates over xDS.
    assert!(stack.envoy.is_running(), "{}", stack.log_tails(30));
    assert_eq!(stack.envoy.pid(), pid);
    let rds_after = envoy_stat(&stack, RDS_UPDATES).await;
    assert!(
        rds_after >= rds_before + 3,
        "{RDS_UPDATES}: {rds_before} -> {rds_after}"
    );
    let uptime_after = envoy_stat(&stack, "server.uptime").await;
    assert!(
        uptime_after >= uptime_before,
        "server.uptime went back from {uptime_before} to {uptime_after}: Envoy restarted"
    );

    // Each edit's way from the file event to the cache is timed, and so is each rebuild.
    let pushes = isobar_metric(&stack.isobar, "isobar_change_to_push_seconds_count").await;
    let rebuilds = isobar_metric(&stack.isobar, "isobar_rebuild_duration_seconds_count").await;
    assert!(pushes >= 3.0, "3 edits, {pushes} timed pushes");
    assert!(
        rebuilds >= 4.0,
        "start + 3 edits, {rebuilds} timed rebuilds"
    );
    // And so is Envoy's answer to each response, by type: at least the three route updates (the
    // ACK of the last may still be on its way when the route already serves).
    let route_answers = "isobar_xds_answer_seconds_count{type=\"route\"}";
    wait_for_async(CONVERGE, "three timed answers to route updates", || async {
        let m = stack.isobar.metrics().await?;
        Ok((metric(&m, route_answers).unwrap_or(0.0) >= 3.0).then_some(()))
    })
    .await
    .unwrap_or_else(|e| panic!("{e}\n{}", stack.log_tails(30)));
}

/// The line number in `FILE:LINE:` if `text` names `file` that way.
fn error_line(text: &str, file: &str) -> Option<usize> {
    let rest = &text[text.find(&format!("{file}:"))? + file.len() + 1..];
    let digits: String = rest.chars().take_while(char::is_ascii_digit).collect();
    digits.parse().ok()
}

#[tokio::test]
async fn unparsable_file_keeps_last_good_routing_and_is_reported() {
    let mut f = Fixture::new();
    f.backend("a");
    f.backend("b");
    f.write(
        "app.yaml",
        &ingress_yaml("app", Some("app.example.com"), &[("/", "Prefix", "a")]),
    );
    let stack = f.start_stack().await;
    wait_routed_to(&stack, "app.example.com", "/", "a").await;
    let metrics = stack.isobar.metrics().await.unwrap();
    assert_eq!(
        metric(&metrics, "isobar_source_errors"),
        Some(0.0),
        "{metrics}"
    );

    // Line 5 is broken: a mapping value where none may be.
    let broken = "apiVersion: networking.k8s.io/v1\nkind: Ingress\nmetadata:\n  name: app\n  namespace: default: oops\nspec: {}\n";
    f.write("app.yaml", broken);
    wait_for_async(CONVERGE, "isobar_source_errors to be 1", || async {
        let m = stack.isobar.metrics().await?;
        Ok((metric(&m, "isobar_source_errors") == Some(1.0)).then_some(()))
    })
    .await
    .unwrap_or_else(|e| panic!("{e}\n{}", stack.log_tails(30)));

    // Something unrelated changes after the broken write, so a push whose input includes the broken
    // file must reach Envoy (the directory is re-read whole on each change). Once it routes and
    // Envoy has ACKed what isobar holds, what Envoy serves is what isobar made of the broken file:
    // had it dropped app.yaml's objects, the check below would see app.example.com gone.
    f.write(
        "marker.yaml",
        &ingress_yaml(
            "marker",
            Some("marker.example.com"),
            &[("/", "Prefix", "b")],
        ),
    );
    wait_routed_to(&stack, "marker.example.com", "/", "b").await;
    wait_envoy_acked_current(&stack).await;
    assert_eq!(
        metric(
            &stack.isobar.metrics().await.unwrap(),
            "isobar_source_errors"
        ),
        Some(1.0),
        "app.yaml is still broken"
    );

    // The last good objects of app.yaml stay in force.
    for _ in 0..5 {
        let r = get(&stack, "app.example.com", "/").await;
        assert_eq!(r.status, 200, "{}", r.text());
        assert_eq!(r.backend().as_deref(), Some("a"), "{}", r.text());
    }
    let status = debug_status(&stack).await;
    let errors = status["source_errors"].as_array().expect("source_errors");
    assert_eq!(errors.len(), 1, "{status}");
    let error = errors[0].as_str().unwrap_or_default();
    assert_eq!(error_line(error, "app.yaml"), Some(5), "{error}");
    let log = stack.isobar.log_tail(50);
    assert!(
        log.lines().any(|l| error_line(l, "app.yaml").is_some()),
        "isobar's log does not name the file and line:\n{log}"
    );

    // Fixing the file applies it and clears the error.
    f.write(
        "app.yaml",
        &ingress_yaml("app", Some("app.example.com"), &[("/", "Prefix", "b")]),
    );
    wait_routed_to(&stack, "app.example.com", "/", "b").await;
    let metrics = stack.isobar.metrics().await.unwrap();
    assert_eq!(
        metric(&metrics, "isobar_source_errors"),
        Some(0.0),
        "{metrics}"
    );
}

#[tokio::test]
async fn invalid_ingress_is_reported_and_does_not_disturb_a_valid_one() {
    let mut f = Fixture::new();
    f.backend("a");
    f.write(
        "good.yaml",
        &ingress_yaml("good", Some("good.example.com"), &[("/", "Prefix", "a")]),
    );
    let stack = f.start_stack().await;
    wait_routed_to(&stack, "good.example.com", "/", "a").await;

    f.write(
        "broken.yaml",
        &ingress_yaml(
            "broken",
            Some("broken.example.com"),
            &[("/", "Prefix", "nope")],
        ),
    );
    let objects = wait_for_async(CONVERGE, "Ingress broken in /debug/status", || async {
        let s = debug_status(&stack).await;
        let objects = s["objects"].as_array().cloned().unwrap_or_default();
        Ok(objects
            .iter()
            .any(|o| o["name"] == "broken")
            .then_some(objects))
    })
    .await
    .unwrap_or_else(|e| panic!("{e}\n{}", stack.log_tails(30)));
    let find = |name: &str| {
        objects
            .iter()
            .find(|o| o["name"] == name && o["kind"] == "Ingress")
            .unwrap_or_else(|| panic!("no Ingress {name} in {objects:?}"))
            .clone()
    };
    let broken = find("broken");
    assert_eq!(broken["status"], "invalid", "{broken}");
    let reason = broken["description"].as_str().unwrap_or_default();
    assert!(
        reason.contains("default/nope") && reason.contains("not found"),
        "reason: {reason}"
    );
    let good = find("good");
    assert_eq!(good["status"], "valid", "{good}");

    // As above: a later, valid change forces a push whose input includes the invalid Ingress, and
    // Envoy must have ACKed it before "the valid one is undisturbed" means anything.
    f.write(
        "marker.yaml",
        &ingress_yaml(
            "marker",
            Some("marker.example.com"),
            &[("/", "Prefix", "a")],
        ),
    );
    wait_routed_to(&stack, "marker.example.com", "/", "a").await;
    wait_envoy_acked_current(&stack).await;

    let r = get(&stack, "broken.example.com", "/").await;
    assert_eq!(r.status, 404, "{}", r.text());
    for _ in 0..5 {
        let r = get(&stack, "good.example.com", "/").await;
        assert_eq!(r.backend().as_deref(), Some("a"), "{}", r.text());
    }
}
