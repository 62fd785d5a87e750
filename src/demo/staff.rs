//! Simulated staff: every ward's unit and the operators, working incidents through their
//! lifecycle over the dashboard API with their own tokens.

use std::collections::HashMap;
use std::time::Duration;

use ioc_config::supervise::CancellationToken;
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};

/// Another incident of the same ward and category in `items`, if any.
fn items_same_ward(incident: &serde_json::Value, items: &[serde_json::Value]) -> Option<String> {
    items
        .iter()
        .find(|o| {
            o["id"] != incident["id"]
                && o["ward"]["id"] == incident["ward"]["id"]
                && o["category"] == incident["category"]
        })
        .and_then(|o| o["id"].as_str().map(str::to_string))
}

/// Plays the people after the router: ward units acknowledge, work on and resolve their
/// incidents (now and then rejecting one as outside their ward), operators re-route rejected and
/// unassigned ones, and citizens confirm most resolutions and dispute a few. Everything goes
/// through the dashboard API, so the lifecycle moves live on the map.
pub(super) async fn play_staff(
    base: String,
    operator: String,
    units: HashMap<String, String>,
    stop: CancellationToken,
) -> anyhow::Result<()> {
    let client = super::http_client();
    let ward_ids: Vec<String> = units.keys().cloned().collect();
    let mut rng = SmallRng::seed_from_u64(0x57a ^ 0xff);
    let mut tick = tokio::time::interval(Duration::from_millis(700));
    let list = |status: &'static str| {
        let client = client.clone();
        let url = format!("{base}/v1/incidents?status={status}&limit=25");
        let token = operator.clone();
        async move {
            let page: serde_json::Value = client
                .get(url)
                .bearer_auth(token)
                .send()
                .await
                .ok()?
                .json()
                .await
                .ok()?;
            Some(page["items"].as_array()?.clone())
        }
    };
    loop {
        tokio::select! {
            _ = stop.cancelled() => return Ok(()),
            _ = tick.tick() => {}
        }
        for (status, share) in [
            ("new", 0.6),
            ("verified", 0.6),
            ("assigned", 0.5),
            ("acknowledged", 0.4),
            ("in_progress", 0.3),
            ("unassigned", 0.5),
            ("resolved", 0.3),
            ("reopened", 0.5),
        ] {
            let Some(items) = list(status).await else {
                continue;
            };
            let seen = items.clone();
            for incident in items {
                if !rng.random_bool(share) {
                    continue;
                }
                let id = incident["id"].as_str().unwrap_or_default().to_string();
                let unit = incident["ward"]["id"]
                    .as_str()
                    .and_then(|w| units.get(w))
                    .cloned();
                let (path, token, body) = match (status, unit) {
                    // Now and then an operator spots two reports of one problem in a ward.
                    ("assigned", Some(_)) if rng.random_bool(0.02) => {
                        let Some(original) = items_same_ward(&incident, &seen) else {
                            continue;
                        };
                        (
                            "actions",
                            Some(operator.clone()),
                            serde_json::json!({"action": "mark_duplicate", "of": original}),
                        )
                    }
                    ("assigned", Some(t)) if rng.random_bool(0.05) => (
                        "actions",
                        Some(t),
                        serde_json::json!({"action": "reject", "reason": "Ngoài địa bàn phường (outside our ward)"}),
                    ),
                    ("assigned" | "reopened", Some(t)) => (
                        "actions",
                        Some(t),
                        serde_json::json!({"action": "acknowledge"}),
                    ),
                    ("acknowledged", Some(t)) => {
                        ("actions", Some(t), serde_json::json!({"action": "start"}))
                    }
                    ("in_progress", Some(t)) => (
                        "actions",
                        Some(t),
                        serde_json::json!({"action": "resolve", "result": "Đã xử lý xong (handled)"}),
                    ),
                    // With router.require_verification, operators check reports first.
                    ("new", _) => (
                        "actions",
                        Some(operator.clone()),
                        serde_json::json!({"action": "verify"}),
                    ),
                    ("verified", _) if incident["ward"]["id"].is_string() => (
                        "actions",
                        Some(operator.clone()),
                        serde_json::json!({"action": "assign", "ward_id": incident["ward"]["id"]}),
                    ),
                    ("verified" | "unassigned", _) => {
                        let ward = &ward_ids[rng.random_range(0..ward_ids.len())];
                        (
                            "actions",
                            Some(operator.clone()),
                            serde_json::json!({"action": "assign", "ward_id": ward}),
                        )
                    }
                    ("resolved", _) if rng.random_bool(0.05) => (
                        "dispute",
                        None,
                        serde_json::json!({"reason": "Vẫn chưa xử lý (still not fixed)"}),
                    ),
                    ("resolved", _) => ("confirm", None, serde_json::json!({})),
                    _ => continue,
                };
                let request = match (path, token) {
                    ("actions", Some(t)) => client
                        .post(format!("{base}/v1/incidents/{id}/actions"))
                        .bearer_auth(t),
                    (p, _) => client.post(format!("{base}/v1/reports/{id}/{p}")),
                };
                if let Err(e) = request.json(&body).send().await {
                    tracing::debug!("staff simulator request failed: {e}");
                }
            }
        }
    }
}
