//! Hostile input against every HTTP endpoint of a running pipeline: the attacks found so far,
//! each as a case of its own, then a seeded fuzzer that mutates valid requests with hostile
//! values (control characters, huge texts, arrays where objects belong, impossible dates, unsafe
//! links, forged ids). Asserted throughout: no 5xx for a client's mistake, no dropped connection
//! (a panicking handler drops it), the live stream stays open, and everything stored and served
//! afterwards stays well-formed JSON, XML and Server-Sent Events.

mod common;

use common::{
    point_in, Pipeline, StreamReader, CAMERA_KEY, OPEN311_KEY, OPERATOR_TOKEN, WARD2_TOKEN,
    WARD_OF_TOKEN, WARD_TOKEN,
};
use ioc_schema::validate::{check_id, check_url};
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};
use serde_json::{json, Value};

fn report_body(ward: &str, text: &str) -> Value {
    let (lat, lon) = point_in(ward);
    json!({
        "channel": "app", "category": "environment", "text": text,
        "location": {"lat": lat, "lon": lon}, "reporter": {"phone": "0900000000"},
        "submitted_at": chrono::Utc::now(),
    })
}

fn camera_body() -> Value {
    json!([{"camera_id": "CAM-0001", "event_type": "accident", "confidence": 0.9,
            "detected_at": chrono::Utc::now()}])
}

/// What came back: status, body bytes, and selected headers.
struct Answer {
    status: u16,
    body: Vec<u8>,
    content_type: String,
}

impl Answer {
    fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap_or_default()
    }

    /// The machine-readable code of a refusal, in our format.
    fn code(&self) -> String {
        self.json()["error"]["code"]
            .as_str()
            .unwrap_or_default()
            .to_string()
    }
}

/// Sends a request and insists the server answered (a handler that panics drops the connection)
/// without a 5xx.
async fn send(what: &str, req: reqwest::RequestBuilder) -> Answer {
    let resp = req
        .send()
        .await
        .unwrap_or_else(|e| panic!("{what}: no answer ({e}); did a handler panic?"));
    let status = resp.status().as_u16();
    let content_type = resp
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_string();
    let body = resp.bytes().await.map(|b| b.to_vec()).unwrap_or_default();
    assert!(
        status < 500,
        "{what}: answered {status}: {}",
        String::from_utf8_lossy(&body)
    );
    if (400..500).contains(&status) && content_type.starts_with("application/json") {
        let v: Value = serde_json::from_slice(&body).expect("a JSON refusal");
        let message = v["error"]["message"]
            .as_str()
            .or(v[0]["description"].as_str())
            .unwrap_or_else(|| panic!("{what}: refusal without a reason: {v}"));
        assert!(!message.is_empty(), "{what}: empty reason");
    }
    Answer {
        status,
        body,
        content_type,
    }
}

/// Percent-encodes every byte but letters and digits, for hostile path segments and queries.
fn enc(s: &str) -> String {
    s.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

/// Checks the stream's framing: only known fields, every data line a JSON document, ids
/// of the safe alphabet.
fn check_well_formed(stream: &StreamReader) -> usize {
    let text = stream.text();
    let mut events = 0;
    for block in text.split("\n\n").filter(|b| !b.trim().is_empty()) {
        for line in block.lines() {
            if line.starts_with(':') {
                continue;
            }
            let (field, value) = line.split_once(':').unwrap_or((line, ""));
            let value = value.strip_prefix(' ').unwrap_or(value);
            match field {
                "event" => assert!(matches!(value, "incident" | "lagged"), "{line}"),
                "id" => {
                    let (id, rev) = value.rsplit_once(':').expect("id:revision");
                    check_id("event id", id).unwrap();
                    rev.parse::<u64>().unwrap();
                }
                "data" => {
                    serde_json::from_str::<Value>(value)
                        .unwrap_or_else(|e| panic!("stream data is not JSON ({e}): {value:.200}"));
                    events += 1;
                }
                other => panic!("unexpected stream field {other:?} in {line:.200}"),
            }
        }
    }
    events
}

async fn file(p: &Pipeline, body: &Value) -> String {
    let a = send(
        "report",
        p.http
            .post(format!("{}/v1/reports", p.ingest_url))
            .json(body),
    )
    .await;
    assert_eq!(a.status, 202, "{}", String::from_utf8_lossy(&a.body));
    a.json()["tracking_id"].as_str().unwrap().to_string()
}

async fn wait_incident(p: &Pipeline, id: &str) -> Value {
    p.incident_when(id, "appears", |_| true).await
}

async fn act(p: &Pipeline, id: &str, token: &str, body: impl Into<reqwest::Body>) -> Answer {
    send(
        "action",
        p.http
            .post(format!(
                "{}/v1/incidents/{}/actions",
                p.dashboard_url,
                enc(id)
            ))
            .bearer_auth(token)
            .header("content-type", "application/json")
            .body(body),
    )
    .await
}

async fn get(p: &Pipeline, path_and_query: &str, token: Option<&str>) -> Answer {
    let mut req = p.http.get(format!("{}{path_and_query}", p.dashboard_url));
    if let Some(t) = token {
        req = req.bearer_auth(t);
    }
    send(path_and_query, req).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_known_attack_is_refused_and_the_stream_survives() {
    let p = Pipeline::start("hostile-known", 2, 1).await;
    let stream = StreamReader::open(&p, &format!("/v1/stream?access_token={OPERATOR_TOKEN}")).await;
    let camera = |body: Value, key: Option<&str>| {
        let mut req = p
            .http
            .post(format!("{}/v1/camera-events", p.ingest_url))
            .json(&body);
        if let Some(k) = key {
            req = req.bearer_auth(k);
        }
        req
    };

    // 1 and 2: ids with line breaks or NUL, blank ids, and an id squatting a citizen's.
    for bad in ["x\ny", "x\rz", "x\u{0}", "", "   "] {
        let mut body = camera_body();
        body[0]["event_id"] = json!(bad);
        let a = send("camera id", camera(body, Some(CAMERA_KEY))).await;
        assert_eq!(a.status, 422, "{bad:?}");
        assert_eq!(a.json()["error"]["items"][0]["code"], "invalid_id");
    }
    // A camera system sending a citizen's tracking id as its event id gets an id of its own,
    // and the citizen's incident stays theirs.
    let mut report = report_body(WARD_OF_TOKEN, "Rác tràn ra đường");
    report["idempotency_key"] = json!("phone-42-2026-11-24");
    let tracking = file(&p, &report).await;
    let before = wait_incident(&p, &tracking).await;
    let mut squat = camera_body();
    squat[0]["event_id"] = json!(tracking);
    let a = send("squatting camera", camera(squat, Some(CAMERA_KEY))).await;
    assert_eq!(a.status, 202);
    let camera_incident = a.json()["incident_ids"][0].as_str().unwrap().to_string();
    assert_ne!(camera_incident, tracking);
    assert!(camera_incident.starts_with("cam-"));
    assert_eq!(
        wait_incident(&p, &camera_incident).await["source"]["kind"],
        "camera"
    );
    assert_eq!(wait_incident(&p, &tracking).await, before);

    // 3: no key, a wrong key.
    for key in [None, Some("guess")] {
        let a = send("camera without key", camera(camera_body(), key)).await;
        assert_eq!(a.status, 401, "{key:?}");
    }

    // 4: impossible times in bodies and in queries.
    for t in [
        "0000-01-01T00:00:00Z",
        "0001-01-01T00:00:00Z",
        "-262143-01-01T00:00:00Z",
    ] {
        let mut body = report_body(WARD_OF_TOKEN, "x");
        body["submitted_at"] = json!(t);
        let a = send(
            "old report",
            p.http
                .post(format!("{}/v1/reports", p.ingest_url))
                .json(&body),
        )
        .await;
        assert_eq!((a.status, a.code().as_str()), (422, "invalid_time"), "{t}");
        let mut cam = camera_body();
        cam[0]["detected_at"] = json!(t);
        let a = send("old camera event", camera(cam, Some(CAMERA_KEY))).await;
        assert_eq!(a.status, 422, "{t}");
        for path in [
            format!("/v1/figures?until={}", enc(t)),
            format!("/v1/figures?since={0}&until={0}", enc(t)),
            format!("/v1/incidents?since={}", enc(t)),
        ] {
            get(&p, &path, Some(OPERATOR_TOKEN)).await;
        }
        get(
            &p,
            &format!("/open311/v2/requests.json?end_date={}", enc(t)),
            None,
        )
        .await;
        get(
            &p,
            &format!("/open311/v2/requests.xml?end_date={}", enc(t)),
            None,
        )
        .await;
    }

    // 5 and 6: unsafe links and oversized texts in a ward unit's resolution.
    let id = tracking.clone();
    assert_eq!(
        act(&p, &id, WARD_TOKEN, r#"{"action":"acknowledge"}"#)
            .await
            .status,
        200
    );
    for url in [
        "javascript:alert(1)",
        "file:///etc/passwd",
        "data:text/html,x",
    ] {
        let a = act(
            &p,
            &id,
            WARD_TOKEN,
            json!({"action": "resolve", "result": "ok", "photo_urls": [url]}).to_string(),
        )
        .await;
        assert_eq!((a.status, a.code().as_str()), (422, "invalid"), "{url}");
    }
    // Over the dashboard's 64 KiB, yet small enough to be written whole before the answer: a
    // body of megabytes can still be on its way when the 413 closes the connection, and the
    // client then sees a broken pipe instead of the answer.
    let huge = json!({"action": "resolve", "result": "x".repeat(100_000)}).to_string();
    let a = act(&p, &id, WARD_TOKEN, huge).await;
    assert_eq!((a.status, a.code().as_str()), (413, "body_too_large"));
    let long = json!({"action": "resolve", "result": "x".repeat(5000)}).to_string();
    assert_eq!(act(&p, &id, WARD_TOKEN, long).await.status, 422);

    // 7: control characters never reach the XML feed (refused at the door).
    let mut ctl = report_body(WARD_OF_TOKEN, "bell\u{7} and escape\u{1b}");
    ctl["address"] = json!("a\u{0}b");
    let a = send(
        "control characters",
        p.http
            .post(format!("{}/v1/reports", p.ingest_url))
            .json(&ctl),
    )
    .await;
    assert_eq!(a.status, 422);

    // 8: tokens in URLs only on the stream; another ward hears only "not yours".
    let a = get(
        &p,
        &format!("/v1/incidents?access_token={OPERATOR_TOKEN}"),
        None,
    )
    .await;
    assert_eq!((a.status, a.code().as_str()), (400, "token_in_url"));
    let a = get(&p, &format!("/v1/incidents/{id}"), Some(WARD2_TOKEN)).await;
    assert_eq!(a.status, 403);
    let a = act(&p, &id, WARD2_TOKEN, r#"{"action":"start"}"#).await;
    assert_eq!(a.status, 403);
    let message = a.json()["error"]["message"].as_str().unwrap().to_string();
    assert!(!message.contains("acknowledged"), "{message}");
    let a = get(&p, "/v1/incidents?status=typo", Some(OPERATOR_TOKEN)).await;
    assert_eq!(a.status, 400);

    // 9: arrays where the schema names objects.
    for (field, value) in [
        ("location", json!([20.548, 105.918])),
        ("reporter", json!([])),
    ] {
        let mut body = report_body(WARD_OF_TOKEN, "x");
        body[field] = value;
        let a = send(
            "array for object",
            p.http
                .post(format!("{}/v1/reports", p.ingest_url))
                .json(&body),
        )
        .await;
        assert_eq!(a.status, 422, "{field}");
    }

    // The stream carried the citizen's incident and is still open after all of it.
    let sentinel = file(&p, &report_body(WARD_OF_TOKEN, "sentinel")).await;
    stream.wait_for(&sentinel).await;
    assert!(check_well_formed(&stream) >= 2);
    p.stop().await;
}

/// Hostile values the fuzzer puts into fields.
fn hostile_value(rng: &mut SmallRng) -> Value {
    let strings = [
        "",
        " ",
        "x\ny",
        "x\r\ny",
        "\u{0}",
        "\u{1b}[31mred",
        "\u{7f}\u{85}",
        "\u{FFFF}",
        "<script>alert(1)</script>",
        "]]><x/>",
        "&amp;&#0;",
        "javascript:alert(1)",
        "file:///etc/passwd",
        "https://",
        "https://ok.example.vn/a.jpg",
        "0000-01-01T00:00:00Z",
        "-262143-01-01T00:00:00Z",
        "+262142-12-31T23:59:59Z",
        "1970-01-01T00:00:00Z",
        "NaN",
        "P001",
        "cam-00000000-0000-0000-0000-000000000000",
        "Phường Sài Gòn 🚦",
        "%00%0a",
        "../../etc/passwd",
    ];
    match rng.random_range(0..10) {
        0..=4 => json!(strings[rng.random_range(0..strings.len())]),
        5 => json!("x".repeat(rng.random_range(4000..9000))),
        6 => [
            json!(0),
            json!(-1),
            json!(1e308),
            json!(-1e308),
            json!(91),
            json!(9_007_199_254_740_993u64),
            json!(0.5),
        ][rng.random_range(0..7)]
        .clone(),
        7 => [
            json!([]),
            json!([20.5, 105.9]),
            json!([null]),
            json!([[[]]]),
        ][rng.random_range(0..4)]
        .clone(),
        8 => [
            json!({}),
            json!({"lat": 20.5, "lon": 105.9}),
            json!({"a": {"b": {"c": {}}}}),
        ][rng.random_range(0..3)]
        .clone(),
        _ => [json!(null), json!(true)][rng.random_range(0..2)].clone(),
    }
}

/// A valid body with one to three fields replaced, removed or added.
fn mutate(rng: &mut SmallRng, mut body: Value) -> Value {
    let target = match &mut body {
        Value::Array(items) if !items.is_empty() => &mut items[0],
        other => other,
    };
    if let Value::Object(fields) = target {
        for _ in 0..rng.random_range(1..=3) {
            let keys: Vec<String> = fields.keys().cloned().collect();
            match rng.random_range(0..6) {
                0 if !keys.is_empty() => {
                    fields.remove(&keys[rng.random_range(0..keys.len())]);
                }
                1 => {
                    fields.insert("unexpected".into(), hostile_value(rng));
                }
                _ if !keys.is_empty() => {
                    let k = &keys[rng.random_range(0..keys.len())];
                    fields.insert(k.clone(), hostile_value(rng));
                }
                _ => {}
            }
        }
    }
    body
}

/// Raw bodies that are not JSON at all, or barely.
fn hostile_raw(rng: &mut SmallRng) -> Vec<u8> {
    let raws: [&[u8]; 8] = [
        b"",
        b"{",
        b"[]",
        b"null",
        b"{\"action\":",
        b"\xff\xfe\x00",
        b"{\"a\":\"\\ud800\"}",
        b"[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[]]]",
    ];
    raws[rng.random_range(0..raws.len())].to_vec()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fuzzed_requests_never_crash_a_stage_and_what_is_served_stays_well_formed() {
    let p = Pipeline::start("hostile-fuzz", 2, 1).await;
    let stream = StreamReader::open(&p, &format!("/v1/stream?access_token={OPERATOR_TOKEN}")).await;
    let seed = std::env::var("IOC_FUZZ_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(0x10c_f022u64);
    let rounds: usize = std::env::var("IOC_FUZZ_ROUNDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(400);
    println!("fuzzing with seed {seed:#x}, {rounds} rounds (IOC_FUZZ_SEED, IOC_FUZZ_ROUNDS)");
    let mut rng = SmallRng::seed_from_u64(seed);
    let known = file(&p, &report_body(WARD_OF_TOKEN, "gốc")).await;
    wait_incident(&p, &known).await;
    let mut accepted = 0;
    for round in 0..rounds {
        let raw = rng.random_bool(0.1).then(|| hostile_raw(&mut rng));
        let body = |rng: &mut SmallRng, base: Value| {
            raw.clone()
                .unwrap_or_else(|| serde_json::to_vec(&mutate(rng, base)).unwrap())
        };
        let what = format!("round {round}");
        let id_for_path = if rng.random_bool(0.7) {
            known.clone()
        } else {
            hostile_value(&mut rng).as_str().unwrap_or("x").to_string()
        };
        let a = match rng.random_range(0..9) {
            0 | 1 => {
                let b = body(&mut rng, report_body(WARD_OF_TOKEN, "fuzz"));
                send(
                    &what,
                    p.http
                        .post(format!("{}/v1/reports", p.ingest_url))
                        .header("content-type", "application/json")
                        .body(b),
                )
                .await
            }
            2 => {
                let b = body(&mut rng, camera_body());
                send(
                    &what,
                    p.http
                        .post(format!("{}/v1/camera-events", p.ingest_url))
                        .bearer_auth(CAMERA_KEY)
                        .header("content-type", "application/json")
                        .body(b),
                )
                .await
            }
            3 => {
                let base = [
                    json!({"action": "resolve", "result": "xong", "photo_urls": ["https://x.vn/a.jpg"]}),
                    json!({"action": "reject", "reason": "không phải", "ward_id": "P002"}),
                    json!({"action": "assign", "ward_id": "P001", "note": "n", "priority": "urgent"}),
                    json!({"action": "mark_duplicate", "of": known}),
                    json!({"action": "cancel", "reason": "r"}),
                    json!({"action": "acknowledge"}),
                ];
                let pick = base[rng.random_range(0..base.len())].clone();
                let b = body(&mut rng, pick);
                let token = [OPERATOR_TOKEN, WARD_TOKEN, WARD2_TOKEN][rng.random_range(0..3)];
                act(&p, &id_for_path, token, b).await
            }
            4 => {
                let b = body(&mut rng, json!({"reason": "vẫn còn"}));
                send(
                    &what,
                    p.http
                        .post(format!(
                            "{}/v1/reports/{}/dispute",
                            p.dashboard_url,
                            enc(&id_for_path)
                        ))
                        .header("content-type", "application/json")
                        .body(b),
                )
                .await
            }
            5 => {
                let v = hostile_value(&mut rng);
                let s = v.as_str().map_or_else(|| v.to_string(), str::to_string);
                let mut form = vec![
                    ("api_key", OPEN311_KEY.to_string()),
                    ("service_code", "environment".to_string()),
                    ("lat", "20.54".to_string()),
                    ("long", "105.91".to_string()),
                    ("description", "Đèn hỏng".to_string()),
                ];
                let fields = [
                    "api_key",
                    "service_code",
                    "lat",
                    "long",
                    "description",
                    "media_url",
                    "first_name",
                    "address_string",
                    "email",
                ];
                let f = fields[rng.random_range(0..fields.len())];
                form.retain(|(k, _)| *k != f);
                form.push((f, s));
                let ext = if rng.random_bool(0.5) { "json" } else { "xml" };
                send(
                    &what,
                    p.http
                        .post(format!("{}/open311/v2/requests.{ext}", p.dashboard_url))
                        .form(&form),
                )
                .await
            }
            6 | 7 => {
                let v = hostile_value(&mut rng);
                let s = v.as_str().map_or_else(|| v.to_string(), str::to_string);
                let paths = [
                    "/v1/incidents",
                    "/v1/stats",
                    "/v1/figures",
                    "/v1/overdue",
                    "/v1/assignments",
                    "/open311/v2/requests.json",
                    "/open311/v2/requests.xml",
                ];
                let params = [
                    "ward",
                    "status",
                    "category",
                    "since",
                    "until",
                    "limit",
                    "offset",
                    "start_date",
                    "end_date",
                    "service_code",
                    "service_request_id",
                    "jurisdiction_id",
                ];
                let path = paths[rng.random_range(0..paths.len())];
                let param = params[rng.random_range(0..params.len())];
                let token = [Some(OPERATOR_TOKEN), Some(WARD_TOKEN), None][rng.random_range(0..3)];
                get(&p, &format!("{path}?{param}={}", enc(&s)), token).await
            }
            _ => {
                let paths = [
                    format!("/v1/incidents/{}", enc(&id_for_path)),
                    format!("/v1/reports/{}", enc(&id_for_path)),
                    format!("/open311/v2/requests/{}.xml", enc(&id_for_path)),
                    format!("/open311/v2/requests/{}.json", enc(&id_for_path)),
                ];
                get(
                    &p,
                    &paths[rng.random_range(0..paths.len())],
                    Some(OPERATOR_TOKEN),
                )
                .await
            }
        };
        if a.status == 202 || a.status == 201 {
            accepted += 1;
        }
        if a.content_type.starts_with("text/xml") {
            let text = String::from_utf8(a.body.clone()).expect("XML is UTF-8");
            roxmltree::Document::parse(&text)
                .unwrap_or_else(|e| panic!("{what}: not well-formed XML ({e}): {text:.300}"));
        }
    }
    println!("{accepted} of {rounds} fuzzed requests were valid and accepted");

    // Afterwards: the stream is open and well-formed, and everything served is clean.
    let sentinel = file(&p, &report_body(WARD_OF_TOKEN, "sentinel")).await;
    stream.wait_for(&sentinel).await;
    let events = check_well_formed(&stream);
    assert!(events >= 2, "{events} events on the stream");
    let all = get(&p, "/v1/incidents?limit=500", Some(OPERATOR_TOKEN))
        .await
        .json();
    for i in all["items"].as_array().unwrap() {
        check_id("incident id", i["id"].as_str().unwrap()).unwrap();
        for url in i["media_urls"].as_array().into_iter().flatten() {
            check_url("media", url.as_str().unwrap()).unwrap();
        }
        for url in i["resolution"]["photo_urls"]
            .as_array()
            .into_iter()
            .flatten()
        {
            check_url("photo", url.as_str().unwrap()).unwrap();
        }
        let public = get(
            &p,
            &format!("/v1/reports/{}", i["id"].as_str().unwrap()),
            None,
        )
        .await;
        assert_eq!(public.status, 200);
        assert!(!String::from_utf8_lossy(&public.body).contains("0900000000"));
    }
    for path in ["/open311/v2/requests.xml", "/open311/v2/services.xml"] {
        let a = get(&p, path, None).await;
        roxmltree::Document::parse(std::str::from_utf8(&a.body).unwrap())
            .unwrap_or_else(|e| panic!("{path} is not well-formed XML: {e}"));
    }
    p.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn many_live_streams_stay_open_while_incidents_flow() {
    let p = Pipeline::start("hostile-streams", 2, 1).await;
    let mut readers = Vec::new();
    for _ in 0..100 {
        readers.push(
            StreamReader::open(&p, &format!("/v1/stream?access_token={OPERATOR_TOKEN}")).await,
        );
    }
    let filings = (0..150).map(|i| {
        let body = report_body(WARD_OF_TOKEN, &format!("tải {i}"));
        let http = p.http.clone();
        let url = format!("{}/v1/reports", p.ingest_url);
        async move {
            http.post(url)
                .json(&body)
                .send()
                .await
                .map(|r| r.status().as_u16())
        }
    });
    for status in futures::future::join_all(filings).await {
        assert_eq!(status.expect("ingest answers"), 202);
    }
    let sentinel = file(&p, &report_body(WARD_OF_TOKEN, "sentinel")).await;
    for r in &readers {
        // A reader that fell behind is told ("lagged") and carries on; none is cut.
        r.wait_for(&sentinel).await;
        check_well_formed(r);
    }
    p.stop().await;
}
