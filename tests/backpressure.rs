//! More load than the broker takes, or no broker at all: ingest answers 503 with Retry-After at
//! once instead of queueing requests without bound, and takes reports again when the broker is
//! back. These tests need to slow down and stop the broker, so they always run on the embedded
//! one. (How fast and in how much memory is measured by `cargo bench --bench overload`.)

mod common;

use std::time::Duration;

use common::{eventually, point_in, Pipeline, WARD_OF_TOKEN};
use serde_json::json;

fn report() -> serde_json::Value {
    let (lat, lon) = point_in(WARD_OF_TOKEN);
    json!({
        "channel": "app", "category": "environment", "text": "Rác thải chưa thu gom",
        "location": {"lat": lat, "lon": lon}, "submitted_at": chrono::Utc::now(),
    })
}

/// Files `n` reports at once; returns each answer's status and `Retry-After`.
async fn burst(p: &Pipeline, n: usize) -> Vec<(u16, Option<String>)> {
    let sends = (0..n).map(|_| async {
        let resp = p
            .http
            .post(format!("{}/v1/reports", p.ingest_url))
            .json(&report())
            .send()
            .await
            .expect("ingest answers");
        let retry = resp
            .headers()
            .get("retry-after")
            .map(|v| v.to_str().unwrap().to_string());
        (resp.status().as_u16(), retry)
    });
    futures::future::join_all(sends).await
}

fn count(answers: &[(u16, Option<String>)], status: u16, retry: Option<&str>) -> usize {
    answers
        .iter()
        .filter(|(s, r)| *s == status && r.as_deref() == retry)
        .count()
}

fn refused_at_once(p: &Pipeline) -> u64 {
    p.metrics
        .produce_refusals
        .with_label_values(&["ingest"])
        .get()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn writes_beyond_the_gate_are_refused_at_once() {
    let p = Pipeline::start_embedded("bp-gate", |s| {
        s.config.kafka.max_pending = 3;
        s.config.kafka.produce_timeout = ioc_config::Dur(Duration::from_secs(20));
    })
    .await;
    // A slow broker: every answer takes two seconds, so the first three writes are still
    // waiting when the others arrive.
    let broker = p.embedded().unwrap();
    broker.set_round_trip(Duration::from_secs(2)).unwrap();
    let answers = burst(&p, 12).await;
    broker.set_round_trip(Duration::ZERO).unwrap();
    assert_eq!(count(&answers, 202, None), 3, "{answers:?}");
    assert_eq!(count(&answers, 503, Some("1")), 9, "{answers:?}");
    assert_eq!(refused_at_once(&p), 9);
    // With the broker answering again, reports are taken as before.
    assert_eq!(count(&burst(&p, 3).await, 202, None), 3);
    p.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn while_the_broker_is_away_one_write_probes_and_the_rest_are_refused_at_once() {
    let p = Pipeline::start_embedded("bp-away", |s| {
        s.config.kafka.produce_timeout = ioc_config::Dur(Duration::from_secs(4));
    })
    .await;
    assert_eq!(count(&burst(&p, 1).await, 202, None), 1);
    let broker = p.embedded().unwrap();
    broker.set_down(true).unwrap();
    // The first write after the broker went away waits for it, and is refused when it does not
    // acknowledge within the produce timeout.
    let first = burst(&p, 1).await;
    assert_eq!(count(&first, 503, Some("5")), 1, "{first:?}");
    // From then on one write at a time checks whether the broker is back (and waits), while
    // every other request is answered without waiting.
    let answers = burst(&p, 10).await;
    assert_eq!(count(&answers, 503, Some("5")), 1, "{answers:?}");
    assert_eq!(count(&answers, 503, Some("1")), 9, "{answers:?}");
    assert_eq!(refused_at_once(&p), 9);
    broker.set_down(false).unwrap();
    eventually(
        "reports are taken again once the broker is back",
        || async { (count(&burst(&p, 1).await, 202, None) == 1).then_some(()) },
    )
    .await;
    p.stop().await;
}
