//! Simulated citizens and cameras: reports (some through Open311) and camera events over the
//! real HTTP APIs, and now and then a broken record straight onto the camera topic.

use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;
use ioc_config::kafka::producer_config;
use ioc_config::load::Settings;
use ioc_config::supervise::CancellationToken;
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};
use rdkafka::producer::{FutureProducer, FutureRecord};

const REPORT_TEXTS: &[(&str, &str)] = &[
    (
        "traffic_order",
        "Xe máy đỗ tràn lan trên vỉa hè, người đi bộ phải xuống lòng đường",
    ),
    (
        "traffic_order",
        "Đèn tín hiệu giao thông tại ngã tư bị hỏng",
    ),
    (
        "urban_order",
        "Công trình xây dựng để vật liệu lấn chiếm lòng đường",
    ),
    ("urban_order", "Biển quảng cáo sai phép treo trên cột điện"),
    ("environment", "Rác thải tập kết sai nơi quy định, bốc mùi"),
    (
        "environment",
        "Cống thoát nước bị tắc, nước tràn ra đường sau mưa",
    ),
    ("public_safety", "Dây điện bị đứt treo thấp nguy hiểm"),
    (
        "culture_tourism",
        "Hàng rong chèo kéo khách du lịch tại khu di tích",
    ),
];

const CAMERA_TYPES: &[&str] = &[
    "red_light_violation",
    "pedestrian_crossing_violation",
    "illegal_parking",
    "wrong_way",
    "accident",
    "flooding",
    "fire_or_smoke",
    "crowd",
    "obstruction",
];

/// Plays citizens and cameras: reports and camera events over the ingest API, and now and then a
/// broken record published straight to the camera topic, as a faulty camera system would.
pub(super) async fn simulate(
    settings: Arc<Settings>,
    base: String,
    (open311, open311_key): (String, String),
    camera_key: String,
    rate: f64,
    camera_share: f64,
    stop: CancellationToken,
) -> anyhow::Result<()> {
    let client = super::http_client();
    let producer: Option<FutureProducer> = producer_config(&settings.config).create().ok();
    let cameras: Vec<_> = settings.cameras.values().cloned().collect();
    let mut rng = SmallRng::seed_from_u64(0x10c);
    let tick = Duration::from_millis(100);
    let mut interval = tokio::time::interval(tick);
    let mut budget = 0.0;
    let mut sent = 0u64;
    loop {
        tokio::select! {
            _ = stop.cancelled() => return Ok(()),
            _ = interval.tick() => {}
        }
        budget += rate * tick.as_secs_f64();
        while budget >= 1.0 {
            budget -= 1.0;
            sent += 1;
            let now = Utc::now();
            let cam = &cameras[rng.random_range(0..cameras.len())];
            if rng.random_bool(0.005) {
                if let Some(p) = &producer {
                    let p = p.clone();
                    let topic = settings.config.topics.camera_events.clone();
                    tokio::spawn(async move {
                        let _ = p
                            .send(
                                FutureRecord::to(&topic)
                                    .key("broken-camera")
                                    .payload("{\"camera\": tru"),
                                Duration::from_secs(5),
                            )
                            .await;
                    });
                }
                continue;
            }
            let (path, body) = if rng.random_bool(camera_share) {
                let event_type = CAMERA_TYPES[rng.random_range(0..CAMERA_TYPES.len())];
                (
                    "/v1/camera-events",
                    serde_json::json!([{
                        "camera_id": cam.id,
                        "event_type": event_type,
                        "confidence": (rng.random_range(0.6..1.0f64) * 100.0).round() / 100.0,
                        "detected_at": now,
                        "snapshot_url": format!("https://cctv.example.vn/snapshots/{}/{}.jpg", cam.id, now.timestamp_millis()),
                        "plate": if event_type.contains("violation") { Some(format!("90A-{:05}", rng.random_range(0..100000))) } else { None },
                    }]),
                )
            } else {
                let (category, text) = REPORT_TEXTS[rng.random_range(0..REPORT_TEXTS.len())];
                // Around a camera (where people are), a few far outside the city.
                let (dlat, dlon) = if rng.random_bool(0.03) {
                    (0.08, 0.08)
                } else {
                    (
                        rng.random_range(-0.003..0.003),
                        rng.random_range(-0.003..0.003),
                    )
                };
                // Some apps send a key of their own and, on a flaky line, the same report twice.
                let key = rng
                    .random_bool(0.02)
                    .then(|| format!("phone-report-{sent}"));
                (
                    "/v1/reports",
                    serde_json::json!({
                        "idempotency_key": key,
                        "channel": if rng.random_bool(0.7) { "app" } else { "web_portal" },
                        "category": category,
                        "text": text,
                        "location": { "lat": cam.lat + dlat, "lon": cam.lon + dlon, "accuracy_m": rng.random_range(3.0..30.0f64).round() },
                        "photo_urls": [format!("https://app.example.vn/photos/{sent}.jpg")],
                        "reporter": { "phone": format!("09{:08}", rng.random_range(0..100_000_000u32)) },
                        "submitted_at": now,
                    }),
                )
            };
            let client = client.clone();
            // Some citizens use a 311 app, which files through Open311 instead.
            let request = if path == "/v1/reports" && rng.random_bool(0.15) {
                let form = [
                    ("api_key", open311_key.clone()),
                    (
                        "service_code",
                        body["category"].as_str().unwrap_or_default().to_string(),
                    ),
                    ("lat", body["location"]["lat"].to_string()),
                    ("long", body["location"]["lon"].to_string()),
                    (
                        "description",
                        body["text"].as_str().unwrap_or_default().to_string(),
                    ),
                    (
                        "phone",
                        body["reporter"]["phone"]
                            .as_str()
                            .unwrap_or_default()
                            .to_string(),
                    ),
                ];
                client.post(format!("{open311}/requests.json")).form(&form)
            } else if path == "/v1/camera-events" {
                client
                    .post(format!("{base}{path}"))
                    .bearer_auth(&camera_key)
                    .json(&body)
            } else {
                client.post(format!("{base}{path}")).json(&body)
            };
            let retry = body["idempotency_key"]
                .is_string()
                .then(|| request.try_clone())
                .flatten();
            tokio::spawn(async move {
                for request in std::iter::once(request).chain(retry) {
                    if let Err(e) = request.send().await {
                        tracing::debug!("simulator request failed: {e}");
                    }
                }
            });
        }
    }
}
