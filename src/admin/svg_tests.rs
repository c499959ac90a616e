use super::*;

fn snapshot(hosts: usize) -> v1::Snapshot {
    let virtual_hosts = (0..hosts)
        .map(|i| v1::VirtualHost {
            host: format!("h{i}.example.com"),
            secure: i == 0,
            routes: vec![v1::Route {
                r#match: "prefix".into(),
                path: "/".into(),
                clusters: vec![v1::WeightedCluster {
                    cluster: "default/web/80/x".into(),
                    weight: 100,
                }],
                source: "default/web".into(),
            }],
            ..Default::default()
        })
        .collect();
    v1::Snapshot {
        virtual_hosts,
        clusters: vec![v1::Cluster {
            name: "default/web/80/x".into(),
            service: "default/web".into(),
            port: 80,
            endpoints: vec!["127.0.0.2:8080".into()],
        }],
        ..Default::default()
    }
}

#[test]
fn every_node_and_link_is_drawn() {
    let svg = render(&snapshot(2));
    for label in [
        "https://h0.example.com",
        "http://h1.example.com",
        "h1.example.com/",
        "default/web/80/x",
        "127.0.0.2:8080",
    ] {
        assert!(svg.contains(label), "{label} missing");
    }
    // 2 host → route, 2 route → cluster, 1 cluster → endpoint.
    assert_eq!(svg.matches(r#"class="edge""#).count(), 5);
    assert!(svg.contains("box tls"));
    assert_eq!(svg.matches("<g>").count(), svg.matches("</g>").count());
}

#[test]
fn text_is_escaped() {
    let mut s = snapshot(1);
    s.virtual_hosts[0].host = "<script>&".into();
    let svg = render(&s);
    assert!(!svg.contains("<script>"));
    assert!(svg.contains("&lt;script&gt;&amp;"));
}

#[test]
fn a_large_column_is_summarised() {
    let svg = render(&snapshot(MAX_ROWS + 50));
    assert!(svg.contains("… 50 more"), "no summary row");
    assert!(!svg.contains(&format!("http://h{}.example.com", MAX_ROWS + 10)));
}
