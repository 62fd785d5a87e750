//! The `ioc` binary as an operator uses it.

use std::process::{Command, Output, Stdio};

fn ioc(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_ioc"))
        .args(args)
        .env("RUST_LOG", "warn")
        .stdin(Stdio::null())
        .output()
        .expect("ioc runs")
}

fn temp_dir(name: &str) -> std::path::PathBuf {
    let dir =
        std::env::temp_dir().join(format!("ioc-cli-{name}-{}", uuid::Uuid::new_v4().simple()));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// Runs `ioc demo` for 8 s at 40 events/s on loopback ports (plus `extra` arguments); returns
/// what it printed, after checking it stopped cleanly.
fn run_demo(seconds: &str, extra: &[&str]) -> String {
    let mut args = vec![
        "demo",
        "--rate",
        "40",
        "--duration",
        seconds,
        "--ingest-listen",
        "127.0.0.1:0",
        "--dashboard-listen",
        "127.0.0.1:0",
        "--router-listen",
        "127.0.0.1:0",
    ];
    args.extend_from_slice(extra);
    let out = ioc(&args);
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    stdout
}

/// The numbers of the demo's last line, "stopped: N accepted, M routed, K dead-lettered".
fn summary(stdout: &str) -> Vec<u64> {
    let last = stdout.lines().last().unwrap_or_default();
    last.strip_prefix("stopped: ")
        .unwrap_or_else(|| panic!("no summary line: {last}"))
        .split(|c: char| !c.is_ascii_digit())
        .filter_map(|n| n.parse().ok())
        .collect()
}

#[test]
fn the_demo_runs_the_whole_pipeline_and_stops_cleanly() {
    let stdout = run_demo("8", &[]);
    assert!(
        stdout.contains("ingest API     http://127.0.0.1:"),
        "{stdout}"
    );
    assert!(stdout.contains("operator token"), "{stdout}");
    let accepted = summary(&stdout)[0];
    assert!(accepted > 50, "{stdout}");
}

/// `ioc demo --config config/hcmc.toml`: Ho Chi Minh City's own ward maps (2019 and 2025) and its
/// 697 traffic cameras, read from ../shared/data; skips with a printed reason when absent.
#[test]
fn the_demo_runs_on_ho_chi_minh_citys_own_maps() {
    let data = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/data/vietnam");
    if !data.join("hcmc_2025/hcmc_wards_2025.geojson").is_file() {
        println!("skipped: ../shared/data/vietnam is absent (config/hcmc.toml reads it there)");
        return;
    }
    // Every stage indexes both of the city's maps before it starts (about 8 s here while the
    // other tests of this file run beside it), so the demo runs long enough to route after that.
    let stdout = run_demo("20", &["--config", "config/hcmc.toml"]);
    // The simulated units are the 2025 units, by their official codes (e.g. 26740).
    let ward_line = stdout
        .lines()
        .find(|l| l.trim_start().starts_with("ward token"))
        .expect("a ward token line");
    let unit = ward_line
        .split("unit of ward ")
        .nth(1)
        .and_then(|s| s.split(|c: char| !c.is_ascii_digit()).next())
        .unwrap_or_default();
    assert_eq!(unit.len(), 5, "{ward_line}");
    let numbers = summary(&stdout);
    let (accepted, routed) = (numbers[0], numbers[1]);
    assert!(accepted > 50, "{stdout}");
    // The demo stops every stage at once: what ingest accepted in its last moments is in Kafka
    // but not routed yet (the end-to-end tests wait for every one). Most are routed, and
    // never more than were accepted.
    assert!(routed <= accepted && routed * 4 >= accepted * 3, "{stdout}");
}

/// `ioc wards find` matches names without diacritics, and says so when nothing matches.
#[test]
fn wards_find_matches_names_without_diacritics() {
    let out = ioc(&["wards", "find", "an binh"]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{text}");
    assert!(text.contains("demo-2020\tP001\tPhường An Bình\n"), "{text}");
    assert!(text.lines().all(|l| l.contains("An Bình")), "{text}");
    let out = ioc(&["wards", "find", "DONG   son"]);
    assert!(String::from_utf8_lossy(&out.stdout).contains("Phường Đông Sơn"));
    let out = ioc(&["wards", "find", "nowhere at all"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("no ward's name contains 'nowhere at all'")
    );
}

/// The README shows Ho Chi Minh City's configuration as it is in `config/hcmc.toml`.
#[test]
fn the_readme_shows_the_hcmc_configuration_as_it_is() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    let readme = std::fs::read_to_string(root.join("README.md")).unwrap();
    let config = std::fs::read_to_string(root.join("config/hcmc.toml")).unwrap();
    assert!(
        readme.contains(&format!("```toml\n{config}```")),
        "README.md's copy of config/hcmc.toml is stale"
    );
}

#[test]
fn wards_check_passes_the_demo_city_and_fails_overlaps() {
    let out = ioc(&["wards", "check", "config/demo/wards.geojson"]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{text}");
    assert!(text.contains("features        177"), "{text}");
    assert!(text.contains("verdict         clean"));

    let dir = temp_dir("check");
    let file = dir.join("bad.geojson");
    std::fs::write(
        &file,
        r#"{"type":"FeatureCollection","features":[
          {"type":"Feature","properties":{"id":"A"},"geometry":{"type":"Polygon","coordinates":[[[0,0],[0.01,0],[0.01,0.01],[0,0.01],[0,0]]]}},
          {"type":"Feature","properties":{"id":"B"},"geometry":{"type":"Polygon","coordinates":[[[0.005,0],[0.02,0],[0.02,0.01],[0.005,0.01],[0.005,0]]]}},
          {"type":"Feature","properties":{"id":"B"},"geometry":{"type":"Polygon","coordinates":[[[0,95],[1,95],[1,96],[0,95]]]}}]}"#,
    )
    .unwrap();
    let out = ioc(&["wards", "check", file.to_str().unwrap()]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{text}");
    assert!(text.contains("wards A and B overlap by"), "{text}");
    assert!(text.contains("duplicate ids   1"), "{text}");
    assert!(text.contains("look like (lat, lon)"), "{text}");
}

#[test]
fn wards_locate_keeps_rows_in_order_and_reports_bad_ones() {
    let dir = temp_dir("locate");
    let input = dir.join("points.csv");
    // Centre of the city (the enclave), garbage, far away.
    std::fs::write(
        &input,
        "name,latitude,lng\ncentre,20.548,105.918\nbroken,north,east\nsea,0,0\n",
    )
    .unwrap();
    let out = ioc(&["wards", "locate", input.to_str().unwrap()]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    let rows: Vec<&str> = stdout.lines().collect();
    assert_eq!(
        rows[0],
        "name,latitude,lng,ward_id,ward_name,rule,distance_m,boundary_version"
    );
    assert!(
        rows[1].starts_with("centre,20.548,105.918,P"),
        "{}",
        rows[1]
    );
    assert!(rows[1].contains(",inside,"), "{}", rows[1]);
    assert!(
        rows[2].starts_with("broken,") && rows[2].contains("invalid"),
        "{}",
        rows[2]
    );
    assert!(
        rows[3].starts_with("sea,") && rows[3].contains("unassigned"),
        "{}",
        rows[3]
    );
    assert!(
        stderr.contains("line 3"),
        "bad row reported with its line: {stderr}"
    );
    assert!(stderr.contains("3 rows: 1 bad"), "{stderr}");

    let nd = dir.join("points.ndjson");
    std::fs::write(&nd, "{\"id\":1,\"lat\":20.548,\"lon\":105.918}\nnot json\n").unwrap();
    let out = ioc(&["wards", "locate", nd.to_str().unwrap(), "--quiet"]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    let lines: Vec<serde_json::Value> = stdout
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 2);
    assert_eq!(lines[0]["id"], 1);
    assert_eq!(lines[0]["rule"], "inside");
    assert_eq!(lines[1]["rule"], "invalid");
}

#[test]
fn help_explains_and_stages_refuse_the_embedded_broker() {
    let out = ioc(&["--help"]);
    let text = String::from_utf8_lossy(&out.stdout);
    for cmd in ["demo", "ingest", "router", "dashboard", "wards"] {
        assert!(text.contains(cmd), "{text}");
    }
    let out = ioc(&["router"]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("--brokers"));
}

/// Logs to a pipe are plain text (no colour codes), and JSON lines on request.
#[test]
fn logs_are_plain_in_a_pipe_and_json_on_request() {
    let run = |format: Option<&str>| {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_ioc"));
        if let Some(f) = format {
            cmd.args(["--log-format", f]);
        }
        let out = cmd
            .args(["demo", "--rate", "20", "--duration", "3"])
            .args([
                "--ingest-listen",
                "127.0.0.1:0",
                "--dashboard-listen",
                "127.0.0.1:0",
            ])
            .args(["--router-listen", "127.0.0.1:0"])
            .env("RUST_LOG", "info")
            .env_remove("IOC_LOG_FORMAT")
            .stdin(Stdio::null())
            .output()
            .expect("ioc runs");
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stderr).into_owned()
    };
    let plain = run(None);
    assert!(plain.contains("ingest API on http://"), "{plain}");
    assert!(
        !plain.contains('\u{1b}'),
        "colour codes in a pipe: {plain:.300}"
    );
    let json = run(Some("json"));
    let lines: Vec<&str> = json.lines().filter(|l| !l.trim().is_empty()).collect();
    assert!(!lines.is_empty());
    for line in &lines {
        let v: serde_json::Value =
            serde_json::from_str(line).unwrap_or_else(|e| panic!("not a JSON line ({e}): {line}"));
        assert!(
            v["level"].is_string() && v["timestamp"].is_string(),
            "{line}"
        );
    }
    assert!(json.contains("ingest API on http://"));
}

/// The parallel fast path of `ioc wards locate` (plain CSV) writes exactly what the general CSV
/// path writes for the same rows: here the general path is chosen by quoting the header, which
/// changes nothing else. The rows mix valid points, garbage, positions out of range, blank
/// lines, Windows line ends and, past the first megabyte, quoted fields with commas.
#[test]
fn wards_locate_fast_and_general_paths_agree_row_for_row() {
    let dir = temp_dir("locate-paths");
    let mut rows = String::new();
    let (cx, cy) = ioc_router::wards::demo::CENTRE;
    for i in 0..60_000u64 {
        let (dx, dy) = (
            ((i * 7919) % 1000) as f64 / 1000.0 - 0.5,
            ((i * 104_729) % 1000) as f64 / 1000.0 - 0.5,
        );
        let (lat, lon) = (cy + 0.12 * dy, cx + 0.14 * dx);
        match i % 997 {
            0 => rows.push_str("broken,north,east\n"),
            1 => rows.push_str(&format!("far,95,{lon}\n")),
            2 => rows.push('\n'),
            3 => rows.push_str(&format!("crlf-{i},{lat:.6},{lon:.6}\r\n")),
            // Quoted fields only after the first megabyte, where the fast path is already on.
            4 if i > 50_000 => rows.push_str(&format!("\"quoted, {i}\",{lat:.6},{lon:.6}\n")),
            _ => rows.push_str(&format!("p{i},{lat:.6},{lon:.6}\n")),
        }
    }
    let fast = dir.join("fast.csv");
    let general = dir.join("general.csv");
    std::fs::write(&fast, format!("name,lat,lng\n{rows}")).unwrap();
    std::fs::write(&general, format!("\"name\",lat,lng\n{rows}")).unwrap();
    let run = |input: &std::path::Path| {
        let out = ioc(&["wards", "locate", input.to_str().unwrap()]);
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        (
            out.stdout,
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    };
    let (fast_out, fast_err) = run(&fast);
    let (general_out, general_err) = run(&general);
    assert!(fast_out.len() > 2_000_000);
    assert!(
        fast_out == general_out,
        "the two paths wrote different rows"
    );
    assert_eq!(
        fast_err, general_err,
        "the summaries and the reports of bad rows agree"
    );
    assert!(fast_err.contains("bad"), "{fast_err}");
    assert!(String::from_utf8_lossy(&fast_out).contains("\"quoted, 50"));
}
