#![cfg(feature = "e2e")]
//! Leader election between two isobar replicas on one API server: exactly one holds the Lease and
//! writes statuses; when it dies, the other takes the Lease over and writes them.

mod common;

use std::time::{Duration, Instant};

use isobar_harness::isobar::Isobar;
use isobar_harness::wait_for_async;

use common::kube::{apply, counters_of, ingress, lb_ingress, start_kube_stack, STATUS};

/// The Lease lasts 15 s without renewal; the follower must hold it soon after.
const TAKEOVER: Duration = Duration::from_secs(25);

/// isobar's Lease identity ends in `-PID`.
fn holds(holder: &str, isobar: &Isobar) -> bool {
    holder.ends_with(&format!("-{}", isobar.process().pid()))
}

#[tokio::test]
async fn the_follower_takes_over_when_the_leader_dies() {
    let ks = start_kube_stack().await;
    let replica = ks
        .stack
        .start_isobar_replica(&[])
        .await
        .unwrap_or_else(|e| panic!("starting the second isobar: {e}"));
    let _a = ks.backend("a").await.expect("backend a");
    apply(&ks, ingress("first", &ks.host("first"), &[("/", "a")])).await;
    ks.wait_ingress_lb("first", &lb_ingress(), STATUS)
        .await
        .unwrap_or_else(|e| panic!("{e}\n{}\n{}", ks.log_tails(30), replica.log_tail(30)));

    let holder = ks
        .lease_holder()
        .await
        .expect("reading the Lease")
        .expect("the Lease has a holder");
    let replicas = [&ks.stack.isobar, &replica];
    let leaders: Vec<usize> = (0..2).filter(|&i| holds(&holder, replicas[i])).collect();
    assert_eq!(
        leaders.len(),
        1,
        "Lease holder {holder:?} is not exactly one of isobar pids {} and {}",
        replicas[0].process().pid(),
        replicas[1].process().pid()
    );
    let (leader, follower) = (replicas[leaders[0]], replicas[1 - leaders[0]]);
    let leader_counters = counters_of(leader).await;
    let follower_counters = counters_of(follower).await;
    assert!(
        leader_counters.status_writes >= 1.0,
        "the leader wrote no status: {leader_counters:?}"
    );
    assert_eq!(
        follower_counters.status_writes, 0.0,
        "the follower wrote statuses: {follower_counters:?}"
    );

    // The leader dies without a chance to give the Lease up.
    leader
        .process()
        .kill_now()
        .expect("killing the leading isobar");
    let killed = Instant::now();
    wait_for_async(TAKEOVER, "the other isobar to hold the Lease", || async {
        let holder = ks.lease_holder().await?;
        Ok(holder.filter(|h| holds(h, follower)).map(|_| ()))
    })
    .await
    .unwrap_or_else(|e| {
        panic!(
            "{e}\nfollower:\n{}\nleader:\n{}",
            follower.log_tail(40),
            leader.log_tail(20)
        )
    });
    let took_over = killed.elapsed();
    println!("Lease taken over {took_over:?} after the leader was killed");

    // The new leader writes statuses for a new Ingress.
    apply(&ks, ingress("second", &ks.host("second"), &[("/", "a")])).await;
    ks.wait_ingress_lb("second", &lb_ingress(), STATUS)
        .await
        .unwrap_or_else(|e| panic!("{e}\nfollower:\n{}", follower.log_tail(40)));
    // The writer counts a write once the API server has answered it, so the status can be read a
    // moment before the count moves.
    wait_for_async(
        STATUS,
        "the new leader to count its status write",
        || async {
            let after = counters_of(follower).await;
            Ok((after.status_writes >= 1.0).then_some(()))
        },
    )
    .await
    .unwrap_or_else(|e| panic!("{e}: the status appeared but the new leader counted no write"));
}
