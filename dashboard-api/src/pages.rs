//! The web pages people work in, served by the dashboard itself with everything they need
//! (no CDN, no external tiles, no library downloaded at run time): the operators' console, the
//! ward unit's work list and the citizen's status page. They talk to the same JSON API as any
//! other client, with the token kept in the browser's session storage.

use axum::extract::State;
use axum::http::{header, HeaderValue};
use axum::response::{Html, IntoResponse, Response};

use crate::AppState;

const CONSOLE: &str = include_str!("../assets/console.html");
const WARD: &str = include_str!("../assets/ward.html");
const CITIZEN: &str = include_str!("../assets/citizen.html");
const SCRIPT: &str = include_str!("../assets/app.js");
const STYLE: &str = include_str!("../assets/app.css");

/// Pages may load only what this server serves; photos and snapshots are links to their own
/// hosts (checked http(s) URLs), so images may come from anywhere.
const POLICY: &str = "default-src 'self'; img-src 'self' http: https: data:; style-src 'self'; script-src 'self'; connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'";

/// A page with the city's time zone filled in.
fn page(s: &AppState, html: &str) -> Response {
    let zone = &s.settings.config.dashboard.time_zone;
    let body = html.replace("{{TIME_ZONE}}", &escape_attribute(zone));
    let mut resp = Html(body).into_response();
    let headers = resp.headers_mut();
    headers.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(POLICY),
    );
    headers.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    resp
}

fn escape_attribute(s: &str) -> String {
    s.chars()
        .filter(|c| c.is_ascii_alphanumeric() || matches!(c, '/' | '_' | '-' | '+'))
        .collect()
}

pub(crate) async fn console(State(s): State<AppState>) -> Response {
    page(&s, CONSOLE)
}

pub(crate) async fn ward(State(s): State<AppState>) -> Response {
    page(&s, WARD)
}

/// `/r/{tracking id}`: the id is read by the page's script from its own address.
pub(crate) async fn citizen(State(s): State<AppState>) -> Response {
    page(&s, CITIZEN)
}

pub(crate) async fn script() -> Response {
    asset(SCRIPT, "text/javascript; charset=utf-8")
}

pub(crate) async fn style() -> Response {
    asset(STYLE, "text/css; charset=utf-8")
}

fn asset(body: &'static str, kind: &'static str) -> Response {
    (
        [
            (header::CONTENT_TYPE, kind),
            (header::CACHE_CONTROL, "no-cache"),
        ],
        body,
    )
        .into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_time_zone_cannot_break_out_of_its_attribute() {
        assert_eq!(escape_attribute("Asia/Ho_Chi_Minh"), "Asia/Ho_Chi_Minh");
        assert_eq!(escape_attribute("x\"><script>"), "xscript");
    }
}
