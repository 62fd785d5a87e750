//! Open311 GeoReport v2 clients file and follow requests, through the same Kafka path as the
//! citizens' app, in JSON and XML.

mod common;

use common::{eventually, point_in, read_topic, Pipeline, OPEN311_KEY, WARD_OF_TOKEN, WARD_TOKEN};
use serde_json::{json, Value};

/// Files one request as a 311 client, in `ext` (`json` or `xml`).
async fn file_request(p: &Pipeline, ext: &str) -> reqwest::Response {
    p.http
        .post(format!("{}/open311/v2/requests.{ext}", p.dashboard_url))
        .form(&[
            ("api_key", OPEN311_KEY),
            ("service_code", "environment"),
            ("lat", "20.54"),
            ("long", "105.91"),
            ("description", "Rác"),
        ])
        .send()
        .await
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn open311_clients_file_and_follow_requests_through_kafka() {
    let p = Pipeline::start("life-311", 2, 1).await;
    let base = format!("{}/open311/v2", p.dashboard_url);
    let services = p.public("/open311/v2/services.json").await;
    assert!(services
        .as_array()
        .unwrap()
        .iter()
        .any(|s| s["service_code"] == "environment" && s["metadata"] == false));

    let (lat, lon) = point_in(WARD_OF_TOKEN);
    let post = |form: Vec<(&'static str, String)>| {
        p.http
            .post(format!("{base}/requests.json"))
            .form(&form)
            .send()
    };
    let good = |key: &str| {
        vec![
            ("api_key", key.to_string()),
            ("service_code", "environment".to_string()),
            ("lat", lat.to_string()),
            ("long", lon.to_string()),
            ("description", "Rác thải bên đường".to_string()),
            ("email", "citizen@example.vn".to_string()),
            ("first_name", "Lan".to_string()),
            ("attribute[size]", "large".to_string()),
        ]
    };
    for (form, want) in [
        (good(""), 403),
        (good("wrong-key"), 403),
        (
            good(OPEN311_KEY)
                .into_iter()
                .filter(|(k, _)| *k != "lat")
                .collect(),
            400,
        ),
        (
            good(OPEN311_KEY)
                .into_iter()
                .map(|(k, v)| {
                    if k == "service_code" {
                        (k, "potholes".into())
                    } else {
                        (k, v)
                    }
                })
                .collect(),
            404,
        ),
    ] {
        let resp = post(form).await.unwrap();
        assert_eq!(resp.status().as_u16(), want);
        let err: Value = resp.json().await.unwrap();
        assert_eq!(err[0]["code"], want, "spec error format: {err}");
        assert!(err[0]["description"].as_str().unwrap().len() > 10);
    }
    let resp = post(good(OPEN311_KEY)).await.unwrap();
    assert_eq!(resp.status().as_u16(), 201);
    let created: Value = resp.json().await.unwrap();
    let id = created[0]["service_request_id"]
        .as_str()
        .unwrap()
        .to_string();

    let one = eventually("the Open311 request appears", || async {
        let resp = p
            .http
            .get(format!("{base}/requests/{id}.json"))
            .send()
            .await
            .unwrap();
        if resp.status().as_u16() != 200 {
            return None;
        }
        resp.json::<Value>().await.ok()
    })
    .await;
    // The same resource in XML, as the spec also allows.
    let xml = p
        .http
        .get(format!("{base}/requests/{id}.xml"))
        .send()
        .await
        .unwrap();
    assert!(xml.headers()["content-type"]
        .to_str()
        .unwrap()
        .starts_with("text/xml"));
    let xml = xml.text().await.unwrap();
    assert!(xml.starts_with("<?xml"), "{xml}");
    assert!(
        xml.contains("<service_requests><request><address/><address_id/><agency_responsible>")
            && xml.contains(&format!("<service_request_id>{id}</service_request_id>")),
        "{xml}"
    );
    let refused = p
        .http
        .post(format!("{base}/requests.xml"))
        .form(&[("service_code", "environment")])
        .send()
        .await
        .unwrap();
    assert_eq!(refused.status().as_u16(), 403);
    assert!(refused
        .text()
        .await
        .unwrap()
        .contains("<errors><error><code>403</code><description>"));

    let r = &one[0];
    assert_eq!(r["status"], "open");
    assert_eq!(r["service_code"], "environment");
    assert!(r["status_notes"]
        .as_str()
        .unwrap()
        .starts_with("Assigned to"));
    let incident = p.dashboard(&format!("/v1/incidents/{id}")).await;
    assert_eq!(r["expected_datetime"], incident["sla_due_at"]);
    assert_eq!(incident["source"]["channel"], "open311");
    assert!(!one.to_string().contains("citizen@example.vn"));

    let list = |q: &'static str| {
        let url = format!("{base}/requests.json?{q}");
        let http = p.http.clone();
        async move { http.get(url).send().await.unwrap() }
    };
    let open: Value = list("status=open&service_code=environment,traffic_order")
        .await
        .json()
        .await
        .unwrap();
    assert!(open
        .as_array()
        .unwrap()
        .iter()
        .any(|r| r["service_request_id"] == id.as_str()));
    let closed: Value = list("status=closed").await.json().await.unwrap();
    assert!(closed.as_array().unwrap().is_empty());
    assert_eq!(list("status=maybe").await.status().as_u16(), 400);

    // The unit resolves it; the 311 client sees "closed" and the result.
    let (status, _) = p
        .act(&id, WARD_TOKEN, json!({"action": "acknowledge"}))
        .await;
    assert_eq!(status, 200);
    let (status, _) = p
        .act(
            &id,
            WARD_TOKEN,
            json!({"action": "resolve", "result": "Đã thu gom"}),
        )
        .await;
    assert_eq!(status, 200);
    let r = p
        .public(&format!(
            "/open311/v2/requests.json?service_request_id={id}"
        ))
        .await;
    assert_eq!(r[0]["status"], "closed");
    assert_eq!(r[0]["status_notes"], "Resolved: Đã thu gom");

    // The same Kafka path as any report: the contact is on the reports topic only.
    let reports = read_topic(
        &p.settings.config.kafka.brokers,
        &p.settings,
        &p.settings.config.topics.reports,
    );
    let (_, report) = reports
        .iter()
        .find(|(k, _)| *k == id)
        .expect("report record");
    assert!(String::from_utf8_lossy(report).contains("citizen@example.vn"));
    for rev in p.revisions_on_topic(&id) {
        assert!(!rev.to_string().contains("citizen@example.vn"));
    }
    p.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_open311_key_over_its_budget_gets_429_in_the_spec_format() {
    let p = Pipeline::start_with("o311-limit", 1, 0, None, |s| {
        // One request a minute, so the first one's time (a slow first write to a new topic on
        // a real broker) cannot refill the budget before the second.
        s.config.limits.per_key_per_minute = 1;
        s.config.limits.per_key_burst = 1;
    })
    .await;
    assert_eq!(file_request(&p, "json").await.status().as_u16(), 201);
    let refused = file_request(&p, "json").await;
    assert_eq!(refused.status().as_u16(), 429);
    let retry: u64 = refused.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((1..=60).contains(&retry), "Retry-After {retry}");
    let body: Value = refused.json().await.unwrap();
    assert_eq!(body[0]["code"], 429, "{body}");
    p.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_address_over_its_budget_gets_429_in_the_spec_format() {
    let p = Pipeline::start_with("o311-addr-limit", 1, 0, None, |s| {
        s.config.limits.per_client_per_minute = 1;
        s.config.limits.per_client_burst = 1;
    })
    .await;
    assert_eq!(file_request(&p, "json").await.status().as_u16(), 201);
    let refused = file_request(&p, "json").await;
    assert_eq!(refused.status().as_u16(), 429);
    assert!(refused.headers().contains_key("retry-after"));
    let body: Value = refused.json().await.unwrap();
    assert_eq!(body[0]["code"], 429, "{body}");
    let refused = file_request(&p, "xml").await;
    assert_eq!(refused.status().as_u16(), 429);
    let xml = refused.text().await.unwrap();
    let doc = roxmltree::Document::parse(&xml).expect("well-formed XML");
    assert_eq!(doc.root_element().tag_name().name(), "errors", "{xml}");
    p.stop().await;
}
