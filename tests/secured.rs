//! The pipeline on a broker reached over TLS, as a managed Kafka service or a secured cluster is.
//! scripts/test.sh puts a TLS terminator in front of tansu and names it in
//! `IOC_TEST_TLS_BROKERS`, with the certificate authority that signed it in `IOC_TEST_TLS_CA`;
//! without them these tests say why they skip.

mod common;

use common::{Pipeline, WARD_OF_TOKEN};
use ioc_config::kafka::Sink;
use ioc_config::load::Settings;
use ioc_schema::metrics::Metrics;

/// The TLS broker and its CA file, or `None` (with the reason printed).
fn tls_broker() -> Option<(String, String)> {
    match (
        std::env::var("IOC_TEST_TLS_BROKERS"),
        std::env::var("IOC_TEST_TLS_CA"),
    ) {
        (Ok(b), Ok(ca)) if !b.is_empty() && !ca.is_empty() => Some((b, ca)),
        _ => {
            eprintln!("skipped: IOC_TEST_TLS_BROKERS and IOC_TEST_TLS_CA are not set (scripts/test.sh sets them)");
            None
        }
    }
}

fn over_tls(s: &mut Settings, ca: &str) {
    let options = &mut s.config.kafka.options;
    options.insert("security.protocol".into(), "SSL".into());
    options.insert("ssl.ca.location".into(), ca.into());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_report_travels_the_whole_pipeline_over_tls() {
    let Some((brokers, ca)) = tls_broker() else {
        return;
    };
    let p = Pipeline::start_at("tls-e2e", &brokers, |s| over_tls(s, &ca)).await;
    // Filed through ingest, routed by the router, held by the dashboard: every client speaks TLS.
    let id = p.file_report(WARD_OF_TOKEN).await;
    let incident = p
        .incident_when(&id, "routed", |i| i["ward"]["id"] == WARD_OF_TOKEN)
        .await;
    assert_eq!(incident["status"], "assigned");
    let ready = p
        .http
        .get(format!("{}/readyz", p.ingest_url))
        .send()
        .await
        .expect("ingest answers");
    assert_eq!(ready.status().as_u16(), 200);
    p.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_that_cannot_verify_the_broker_does_not_talk_to_it() {
    let Some((brokers, ca)) = tls_broker() else {
        return;
    };
    let mut s = common::settings("tls-refused", &brokers, 1);
    over_tls(&mut s, &ca);
    let trusted = Sink::new(&s.config, Metrics::new(), "test").expect("producer");
    assert_eq!(trusted.reachable().await, Ok(()));

    // Without our CA the broker's certificate is not trusted (the system's CAs did not sign it).
    s.config.kafka.options.remove("ssl.ca.location");
    let untrusting = Sink::new(&s.config, Metrics::new(), "test").expect("producer");
    assert!(untrusting.reachable().await.is_err());

    // And plain Kafka on a TLS port gets nowhere.
    s.config.kafka.options.clear();
    let plain = Sink::new(&s.config, Metrics::new(), "test").expect("producer");
    assert!(plain.reachable().await.is_err());
}

/// The SCRAM broker (`IOC_TEST_SCRAM_BROKERS`, with `IOC_TEST_SCRAM_USER` and
/// `IOC_TEST_SCRAM_PASSWORD`), or `None` with the reason printed.
fn scram_broker() -> Option<(String, String, String)> {
    let var = |k: &str| std::env::var(k).ok().filter(|v| !v.is_empty());
    match (
        var("IOC_TEST_SCRAM_BROKERS"),
        var("IOC_TEST_SCRAM_USER"),
        var("IOC_TEST_SCRAM_PASSWORD"),
    ) {
        (Some(b), Some(u), Some(p)) => Some((b, u, p)),
        _ => {
            eprintln!("skipped: IOC_TEST_SCRAM_BROKERS, IOC_TEST_SCRAM_USER and IOC_TEST_SCRAM_PASSWORD are not set (scripts/test.sh sets them when its tansu has durable storage)");
            None
        }
    }
}

fn with_scram(s: &mut Settings, user: &str, password: &str) {
    let options = &mut s.config.kafka.options;
    options.insert("security.protocol".into(), "SASL_PLAINTEXT".into());
    options.insert("sasl.mechanisms".into(), "SCRAM-SHA-512".into());
    options.insert("sasl.username".into(), user.into());
    options.insert("sasl.password".into(), password.into());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_report_travels_the_whole_pipeline_signed_in_with_scram() {
    let Some((brokers, user, password)) = scram_broker() else {
        return;
    };
    let mut s = common::settings("scram-refused", &brokers, 1);
    with_scram(&mut s, &user, "not-the-password");
    let refused = Sink::new(&s.config, Metrics::new(), "test").expect("producer");
    assert!(refused.reachable().await.is_err());

    let p = Pipeline::start_at("scram-e2e", &brokers, |s| with_scram(s, &user, &password)).await;
    let id = p.file_report(WARD_OF_TOKEN).await;
    p.incident_when(&id, "routed", |i| i["ward"]["id"] == WARD_OF_TOKEN)
        .await;
    p.stop().await;
}
