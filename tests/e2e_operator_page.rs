#![cfg(feature = "e2e")]
//! The operator page in a real browser (Debian's headless Chromium over WebDriver), served by isobar
//! with a real Envoy connected: it loads with no console errors, shows an invalid object's reason
//! and the Envoy in sync, draws the DAG, filters, and reflects a manifest edit within 2 s. The test
//! saves a screenshot to `target/artifacts/operator-page.png`.

mod common;

use std::path::PathBuf;
use std::time::{Duration, Instant};

use isobar_harness::browser::{Browser, Locator};

use common::{ingress_yaml, valid_and_broken, CONVERGE};

/// The page must show an edit this soon after the file is written (the issue's bound).
const REFLECT_EDIT: Duration = Duration::from_secs(2);

fn artifacts_dir() -> PathBuf {
    // CARGO_TARGET_TMPDIR is target/tmp: the artifacts sit beside it.
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR"))
        .parent()
        .expect("target dir")
        .join("artifacts");
    std::fs::create_dir_all(&dir).expect("creating target/artifacts");
    dir
}

async fn text_of(browser: &Browser, css: &str) -> String {
    match browser.client.find(Locator::Css(css)).await {
        Ok(e) => e.text().await.unwrap_or_default(),
        Err(_) => String::new(),
    }
}

/// Headless Chromium on isobar's operator page (keep the directory while the browser runs).
async fn open_page(stack: &isobar_harness::Stack) -> (Browser, tempfile::TempDir) {
    let logs = tempfile::tempdir().unwrap();
    let browser = Browser::start(logs.path())
        .await
        .unwrap_or_else(|e| panic!("starting headless Chromium: {e}"));
    let page = format!("http://{}/", stack.isobar.debug_addr());
    browser.client.goto(&page).await.expect("loading the page");
    (browser, logs)
}

/// Polls until the Envoys table says `in sync`.
async fn wait_in_sync(browser: &Browser) {
    let deadline = Instant::now() + CONVERGE;
    let mut envoys = String::new();
    while Instant::now() < deadline {
        envoys = text_of(browser, "#envoys tbody").await;
        if envoys.contains("in sync") {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("the page never showed the Envoy in sync: {envoys}");
}

#[tokio::test]
async fn the_operator_page_shows_what_is_broken_and_follows_edits() {
    let f = valid_and_broken();
    let stack = f.start_stack().await;
    let (browser, _logs) = open_page(&stack).await;

    // The invalid object, with its reason.
    let broken = browser
        .client
        .wait()
        .at_most(CONVERGE)
        .for_element(Locator::Css(r#"tr[data-object="Ingress/default/broken"]"#))
        .await
        .expect("the invalid Ingress on the page");
    assert_eq!(
        broken.attr("data-status").await.unwrap().as_deref(),
        Some("INVALID")
    );
    let reason = text_of(
        &browser,
        r#"tr[data-object="Ingress/default/broken"] td.reason"#,
    )
    .await;
    assert!(reason.contains("70000"), "reason: {reason}");

    // The connected Envoy, in sync.
    wait_in_sync(&browser).await;

    // The routing map and the DAG picture.
    let routing = text_of(&browser, "#routing tbody").await;
    assert!(
        routing.contains("http://web.example.com"),
        "routing: {routing}"
    );
    let dag_width = browser
        .client
        .execute(
            "const img = document.getElementById('dag'); return img.complete ? img.naturalWidth : 0;",
            vec![],
        )
        .await
        .expect("reading the DAG image");
    assert!(
        dag_width.as_u64().unwrap_or(0) > 100,
        "DAG image width {dag_width}"
    );

    // Filtering by status leaves only what is not valid.
    browser
        .client
        .find(Locator::Css("#filter-status"))
        .await
        .unwrap()
        .select_by_value("NOT_VALID")
        .await
        .unwrap();
    let rows = browser
        .client
        .find_all(Locator::Css("#objects tbody tr[data-object]"))
        .await
        .unwrap();
    let mut shown = Vec::new();
    for r in rows {
        shown.push(r.attr("data-object").await.unwrap().unwrap_or_default());
    }
    assert_eq!(shown, ["Ingress/default/broken"]);
    browser
        .client
        .find(Locator::Css("#filter-status"))
        .await
        .unwrap()
        .select_by_value("")
        .await
        .unwrap();

    // A manifest edit appears within 2 s of the write.
    let written = Instant::now();
    f.write(
        "new.yaml",
        &ingress_yaml("new", Some("new.example.com"), &[("/", "Prefix", "web")]),
    );
    let appeared = browser
        .client
        .wait()
        .at_most(REFLECT_EDIT)
        .every(Duration::from_millis(20))
        .for_element(Locator::Css(r#"tr[data-object="Ingress/default/new"]"#))
        .await;
    let took = written.elapsed();
    assert!(
        appeared.is_ok(),
        "the new Ingress was not on the page within {REFLECT_EDIT:?}\n{}",
        stack.log_tails(20)
    );
    eprintln!("manifest edit on the page after {took:?}");

    // Envoy ACKs the edit, and the page says so.
    wait_in_sync(&browser).await;

    let errors = browser.console_errors().await.expect("the browser log");
    assert!(errors.is_empty(), "console errors: {errors:#?}");

    let png = browser.client.screenshot().await.expect("a screenshot");
    assert!(png.starts_with(b"\x89PNG"), "not a PNG");
    let path = artifacts_dir().join("operator-page.png");
    std::fs::write(&path, &png).expect("saving the screenshot");
    eprintln!("screenshot: {}", path.display());
    browser.close().await.expect("closing the browser");
}

#[tokio::test]
async fn gateway_api_objects_and_their_listeners_show_on_the_page() {
    let mut f = common::Fixture::new();
    f.backend("web");
    let port = isobar_harness::ports::free_port().expect("a free port");
    f.write(
        "gateway.yaml",
        &format!(
            "apiVersion: gateway.networking.k8s.io/v1
kind: GatewayClass
metadata: {{name: isobar}}
spec: {{controllerName: isobar.dev/gateway-controller}}
---
apiVersion: gateway.networking.k8s.io/v1
kind: Gateway
metadata: {{name: gw, namespace: default}}
spec:
  gatewayClassName: isobar
  listeners: [{{name: web, protocol: HTTP, port: {port}}}]
---
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {{name: shop, namespace: default}}
spec:
  parentRefs: [{{name: gw}}]
  hostnames: [shop.example.com]
  rules: [{{backendRefs: [{{name: web, port: 80}}, {{name: gone, port: 80}}]}}]
"
        ),
    );
    let stack = f.start_stack().await;
    let (browser, _logs) = open_page(&stack).await;
    let route = browser
        .client
        .wait()
        .at_most(CONVERGE)
        .for_element(Locator::Css(r#"tr[data-object="HTTPRoute/default/shop"]"#))
        .await
        .expect("the HTTPRoute on the page");
    assert_eq!(
        route.attr("data-status").await.unwrap().as_deref(),
        Some("INVALID")
    );
    let reason = text_of(
        &browser,
        r#"tr[data-object="HTTPRoute/default/shop"] td.reason"#,
    )
    .await;
    assert!(reason.contains("BackendNotFound"), "reason: {reason}");
    let gateway = text_of(&browser, r#"tr[data-object="Gateway/default/gw"]"#).await;
    assert!(gateway.contains("listener web (1 routes)"), "{gateway}");
    let routing = text_of(&browser, "#routing tbody").await;
    assert!(
        routing.contains(&format!(
            "http://shop.example.com (Gateway listener http-{port})"
        )) && routing.contains("500 (1)"),
        "routing: {routing}"
    );
    let errors = browser.console_errors().await.expect("reading the console");
    assert!(errors.is_empty(), "console errors: {errors:?}");
    browser.close().await.expect("closing the browser");
}
