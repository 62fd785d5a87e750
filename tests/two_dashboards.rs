//! Two dashboard instances behind one address, either of which may stop: lifecycle actions go
//! through the command topic to the one instance that owns the incident's partition, so two
//! actions at the same moment never build on the same revision (one succeeds, the other is
//! refused with 409), and when the owner stops, the other takes its partitions and actions keep
//! succeeding.

mod common;

use common::{
    command_partitions_at, eventually, Pipeline, OPERATOR_TOKEN, WARD2, WARD2_TOKEN, WARD_OF_TOKEN,
    WARD_TOKEN,
};
use serde_json::{json, Value};

/// Posts an action to the dashboard at `base`; the status code (a server error's reason is
/// printed, for the failure message).
async fn act_at(p: &Pipeline, base: &str, id: &str, token: &str, action: Value) -> u16 {
    let response = p
        .http
        .post(format!("{base}/v1/incidents/{id}/actions"))
        .bearer_auth(token)
        .json(&action)
        .send()
        .await
        .expect("dashboard answers");
    let status = response.status().as_u16();
    if status >= 500 {
        let reason = response.text().await.unwrap_or_default();
        eprintln!("{base}: {action} on {id} answered {status}: {reason}");
    }
    status
}

/// Every record of incident `id` on the topic, as (revision, record): no revision twice with
/// different contents.
fn assert_one_record_per_revision(p: &Pipeline, id: &str) -> usize {
    let records = p.revisions_on_topic(id);
    let mut by_revision: std::collections::HashMap<u64, &Value> = Default::default();
    for r in &records {
        let rev = r["revision"].as_u64().unwrap();
        if let Some(seen) = by_revision.insert(rev, r) {
            assert_eq!(seen, r, "two different records for revision {rev} of {id}");
        }
    }
    by_revision.len()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn conflicting_actions_on_two_dashboards_one_succeeds_the_other_gets_409() {
    let mut p = Pipeline::start("two-dash", 2, 1).await;
    let second = p.start_extra_dashboard().await;
    let first = p.dashboard_url.clone();
    // Two partitions, two instances: once each holds one, the group has settled (an action
    // made while a partition moves may wait past its answer time and be told to retry).
    let settling = std::time::Instant::now();
    eventually("each dashboard holds one command partition", || async {
        let a = command_partitions_at(&p.http, &first).await;
        let b = command_partitions_at(&p.http, &second).await;
        (a == Some(1.0) && b == Some(1.0)).then_some(())
    })
    .await;
    eprintln!("the dashboards' group settled in {:?}", settling.elapsed());
    for round in 0..3 {
        let id = p.file_report(WARD_OF_TOKEN).await;
        // The same acknowledgement through both instances at once.
        let ack = json!({"action": "acknowledge"});
        let (a, b) = tokio::join!(
            act_at(&p, &first, &id, WARD_TOKEN, ack.clone()),
            act_at(&p, &second, &id, WARD_TOKEN, ack.clone()),
        );
        let mut got = [a, b];
        got.sort();
        assert_eq!(got, [200, 409], "round {round}");
        // Two operators cancel and close at once: only one is legal after the other.
        let cancel = json!({"action": "cancel", "reason": "trùng"});
        let assign = json!({"action": "assign", "ward_id": "P002"});
        let (a, b) = tokio::join!(
            act_at(&p, &first, &id, OPERATOR_TOKEN, cancel),
            act_at(&p, &second, &id, OPERATOR_TOKEN, assign),
        );
        assert!(a == 200 || b == 200, "round {round}: {a} {b}");
        assert!(
            [a, b].iter().all(|s| [200, 409].contains(s)),
            "round {round}: {a} {b}"
        );
        let revisions = eventually("the revisions on the topic", || async {
            let n = assert_one_record_per_revision(&p, &id);
            (n >= 3).then_some(n)
        })
        .await;
        assert!(revisions >= 3);
    }
    p.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn when_the_owning_dashboard_stops_the_other_takes_over() {
    let mut p = Pipeline::start("two-dash-failover", 1, 1).await;
    let second = p.start_extra_dashboard().await;
    let id = p.file_report(WARD_OF_TOKEN).await;
    // One partition: one of the two owns every incident. Stop the first, then act on the
    // second; start a third, stop the second, act on the third: at least one is a takeover.
    p.stop_dashboard().await;
    let ack = json!({"action": "acknowledge"});
    let status = eventually("an action on the remaining dashboard", || async {
        let s = act_at(&p, &second, &id, WARD_TOKEN, ack.clone()).await;
        (s != 503).then_some(s)
    })
    .await;
    assert_eq!(status, 200);
    let third = p.start_extra_dashboard().await;
    p.stop_extra_dashboard(0).await;
    let start = json!({"action": "start"});
    let status = eventually("an action on the newest dashboard", || async {
        let s = act_at(&p, &third, &id, WARD_TOKEN, start.clone()).await;
        (s != 503).then_some(s)
    })
    .await;
    assert_eq!(status, 200);
    assert_eq!(assert_one_record_per_revision(&p, &id), 3);
    p.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_command_delivered_twice_changes_the_incident_once() {
    use rdkafka::producer::{FutureProducer, FutureRecord};
    let p = Pipeline::start("two-dash-replay", 1, 1).await;
    let id = p.file_report(WARD_OF_TOKEN).await;
    // As an owner that crashed after applying a command but before committing it would leave
    // it: the same command twice on the topic. A reassignment could be applied twice.
    let command_id = format!("cmd-{}", uuid::Uuid::new_v4().simple());
    let command = json!({
        "schema": "ioc.command.v1", "id": command_id, "incident_id": id,
        "action": {"action": "assign", "ward_id": WARD2}, "role": {"role": "operator"},
        "actor": "test operator", "reply_to": "nobody",
    });
    let producer: FutureProducer = ioc_config::kafka::producer_config(&p.settings.config)
        .create()
        .unwrap();
    for _ in 0..2 {
        producer
            .send(
                FutureRecord::to(&p.settings.config.topics.commands)
                    .key(&id)
                    .payload(&serde_json::to_vec(&command).unwrap()),
                std::time::Duration::from_secs(10),
            )
            .await
            .unwrap();
    }
    let moved = p
        .incident_when(&id, "reassigned", |i| i["ward"]["id"] == WARD2)
        .await;
    assert_eq!(moved["history"][1]["command"], command_id.as_str());
    // A later action through the API is applied after both copies: nothing in between.
    let ack = json!({"action": "acknowledge"});
    assert_eq!(
        act_at(&p, &p.dashboard_url, &id, WARD2_TOKEN, ack).await,
        200
    );
    let revisions: Vec<u64> = p
        .revisions_on_topic(&id)
        .iter()
        .map(|r| r["revision"].as_u64().unwrap())
        .collect();
    assert_eq!(revisions, [1, 2, 3], "route, reassign once, acknowledge");
    p.stop().await;
}

/// An `ioc dashboard` child process, killed when dropped.
struct DashboardProcess {
    child: std::process::Child,
    addr: String,
}

impl DashboardProcess {
    fn spawn(p: &Pipeline, config: &std::path::Path) -> DashboardProcess {
        let addr = {
            let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
            l.local_addr().unwrap().to_string()
        };
        let t = &p.settings.config.topics;
        let child = std::process::Command::new(env!("CARGO_BIN_EXE_ioc"))
            .args(["dashboard", "--config", config.to_str().unwrap()])
            .env("IOC_KAFKA__BROKERS", &p.settings.config.kafka.brokers)
            .env("IOC_TOPICS__REPORTS", &t.reports)
            .env("IOC_TOPICS__CAMERA_EVENTS", &t.camera_events)
            .env("IOC_TOPICS__INCIDENTS", &t.incidents)
            .env("IOC_TOPICS__DEAD_LETTER", &t.dead_letter)
            .env("IOC_TOPICS__ASSIGNMENTS", &t.assignments)
            .env("IOC_TOPICS__COMMANDS", &t.commands)
            .env("IOC_TOPICS__COMMAND_RESULTS", &t.command_results)
            .env("IOC_TOPICS__PARTITIONS", t.partitions.to_string())
            .env("IOC_TOPICS__CREATE", "false")
            .env("IOC_DASHBOARD__LISTEN", &addr)
            .env(
                "RUST_LOG",
                std::env::var("IOC_TEST_CHILD_LOG").unwrap_or_else(|_| "warn".into()),
            )
            .stdin(std::process::Stdio::null())
            .spawn()
            .expect("ioc dashboard starts");
        DashboardProcess { child, addr }
    }

    fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Command partitions this process holds, from its metrics.
    async fn owned(&self, http: &reqwest::Client) -> Option<f64> {
        command_partitions_at(http, &self.url()).await
    }
}

impl Drop for DashboardProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dashboard_killed_with_sigkill_hands_its_partitions_to_the_other() {
    let mut p = Pipeline::start("two-dash-sigkill", 1, 1).await;
    let id = p.file_report(WARD_OF_TOKEN).await;
    // Only the two processes below take commands.
    p.stop_dashboard().await;
    let dir = std::env::temp_dir().join(format!("two-dash-{}", uuid::Uuid::new_v4().simple()));
    std::fs::create_dir_all(&dir).unwrap();
    let config = dir.join("ioc.toml");
    std::fs::write(
        &config,
        format!(
            "[[dashboard.tokens]]\nname = \"test ward\"\nrole = \"ward\"\nward = \"{WARD_OF_TOKEN}\"\nsha256 = \"{}\"\n",
            ioc_config::load::token_digest(WARD_TOKEN)
        ),
    )
    .unwrap();
    let mut dashboards = vec![
        DashboardProcess::spawn(&p, &config),
        DashboardProcess::spawn(&p, &config),
    ];
    // One partition: one of the two owns it.
    let owner = eventually(
        "one dashboard process owns the command partition",
        || async {
            for (n, d) in dashboards.iter().enumerate() {
                if d.owned(&p.http).await == Some(1.0) {
                    return Some(n);
                }
            }
            None
        },
    )
    .await;
    let killed = dashboards.remove(owner);
    let mut killed = killed;
    killed.child.kill().expect("SIGKILL");
    let _ = killed.child.wait();
    let other = &dashboards[0];
    let ack = json!({"action": "acknowledge"});
    let started = std::time::Instant::now();
    // A request made while the partition moves may time out (503) and still be applied once
    // the other process owns the partition; a repeat is then refused (409) as already done.
    let status = eventually("the action is applied by the other process", || async {
        let s = act_at(&p, &other.url(), &id, WARD_TOKEN, ack.clone()).await;
        (s != 503 && s != 404).then_some(s)
    })
    .await;
    assert!(status == 200 || status == 409, "{status}");
    let (code, incident) = p
        .dashboard_as_at(&other.url(), &format!("/v1/incidents/{id}"), WARD_TOKEN)
        .await;
    assert_eq!(
        (code, incident["status"].as_str()),
        (200, Some("acknowledged"))
    );
    println!(
        "owner killed with SIGKILL; the other applied an action {:.1} s later",
        started.elapsed().as_secs_f64()
    );
    assert_eq!(assert_one_record_per_revision(&p, &id), 2);
    drop(dashboards);
    let _ = std::fs::remove_dir_all(&dir);
    p.stop().await;
}
