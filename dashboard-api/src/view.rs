//! The dashboard's current view of every incident, rebuilt from the incident topic. Updates are
//! upserts by id that keep the highest revision, so replays and duplicates change nothing.

use std::collections::{BTreeMap, HashMap};

use chrono::{DateTime, Utc};
use ioc_schema::{Incident, Status};
use rstar::primitives::GeomWithData;
use rstar::{RTree, AABB};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// Filters of `GET /v1/incidents` (and of the live stream).
#[derive(Debug, Default, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Query {
    /// A ward id, or `unassigned` for incidents without a ward. A ward unit's token is held to
    /// its own ward.
    pub ward: Option<String>,
    /// One status; an unknown name is refused (400) rather than matching nothing.
    pub status: Option<Status>,
    /// A category id (`GET /v1/categories` on ingest lists them).
    pub category: Option<String>,
    /// Only incidents that occurred at or after this instant.
    pub since: Option<DateTime<Utc>>,
    /// Only incidents that occurred before this instant.
    pub until: Option<DateTime<Utc>>,
    /// Page size (default 100, at most `dashboard.max_page_size`).
    pub limit: Option<usize>,
    /// How many matching incidents to skip.
    pub offset: Option<usize>,
    /// `GET /v1/figures` only: count every incident in the wards of this boundary set
    /// (a version from `GET /v1/wards` or the router's `/v1/boundary-sets`), those routed under
    /// the set before it mapped through its predecessors table, or by location where the table
    /// does not place their ward. `ward` then names a ward of this set.
    pub boundary_set: Option<String>,
    /// Accepted by the stream endpoint only, where browsers cannot send headers; refused
    /// elsewhere, so tokens stay out of URLs (and so out of logs and browser histories).
    pub access_token: Option<String>,
}

impl Query {
    pub fn matches(&self, i: &Incident) -> bool {
        self.in_ward(i.ward.as_ref().map(|w| w.id.as_str())) && self.matches_but_ward(i)
    }

    /// Whether an incident counted in `ward` (`None`: no ward) passes the ward filter.
    pub fn in_ward(&self, ward: Option<&str>) -> bool {
        self.ward
            .as_deref()
            .is_none_or(|w| ward == Some(w) || (w == "unassigned" && ward.is_none()))
    }

    /// Every filter but the ward.
    pub fn matches_but_ward(&self, i: &Incident) -> bool {
        self.status.is_none_or(|s| i.status == s)
            && self.category.as_ref().is_none_or(|c| &i.category == c)
            && self.since.is_none_or(|t| i.occurred_at >= t)
            && self.until.is_none_or(|t| i.occurred_at < t)
    }
}

/// One page of incidents, newest first.
#[derive(Debug, Serialize, JsonSchema)]
pub struct Page<'a> {
    pub total: usize,
    pub offset: usize,
    pub items: Vec<&'a Incident>,
    pub next_offset: Option<usize>,
}

/// Counts for `GET /v1/stats`.
#[derive(Debug, Serialize, JsonSchema)]
pub struct Stats {
    pub total: usize,
    pub by_status: BTreeMap<&'static str, usize>,
    /// ward id ("unassigned" for none) → status → category → count.
    pub by_ward: BTreeMap<String, BTreeMap<&'static str, BTreeMap<String, usize>>>,
}

/// Every incident's latest revision, and where the open ones are.
#[derive(Default)]
pub struct View {
    incidents: HashMap<String, Incident>,
    /// Open incidents by position (lon, lat in degrees), for nearby duplicates.
    open: RTree<GeomWithData<[f64; 2], String>>,
}

/// An open incident that may be the same thing as another, and why.
#[derive(Debug, Serialize, JsonSchema)]
pub struct Nearby {
    pub id: String,
    pub category: String,
    pub status: Status,
    pub source: &'static str,
    /// Great-circle distance, metres.
    pub distance_m: f64,
    /// Between the two occurrence times, seconds.
    pub seconds_apart: i64,
    /// Why it is offered, e.g. "same category, 120 m and 40 min apart".
    pub why: String,
}

/// Most possible duplicates offered for one incident.
pub const MAX_NEARBY: usize = 5;

/// Metres between two WGS84 positions (haversine on a sphere of the mean Earth radius).
pub fn metres_between(a: (f64, f64), b: (f64, f64)) -> f64 {
    const R: f64 = 6_371_008.8;
    let (lat1, lat2) = (a.0.to_radians(), b.0.to_radians());
    let dlat = lat2 - lat1;
    let dlon = (b.1 - a.1).to_radians();
    let h = (dlat / 2.0).sin().powi(2) + lat1.cos() * lat2.cos() * (dlon / 2.0).sin().powi(2);
    2.0 * R * h.sqrt().min(1.0).asin()
}

fn point_of(i: &Incident) -> GeomWithData<[f64; 2], String> {
    GeomWithData::new([i.location.lon, i.location.lat], i.id.clone())
}

impl View {
    /// Applies one record; returns the incident if it changed the view.
    pub fn apply(&mut self, incident: Incident) -> Option<&Incident> {
        let newer = self
            .incidents
            .get(&incident.id)
            .is_none_or(|old| incident.revision > old.revision);
        if !newer {
            return None;
        }
        let id = incident.id.clone();
        let open_now = incident.status.is_open().then(|| point_of(&incident));
        if let Some(old) = self.incidents.insert(id.clone(), incident) {
            if old.status.is_open() {
                self.open.remove(&point_of(&old));
            }
        }
        if let Some(p) = open_now {
            self.open.insert(p);
        }
        self.incidents.get(&id)
    }

    /// Open incidents that may be the same thing as `of`: of its category or a related one,
    /// within the category's radius and the time window, nearest first, at most
    /// [`MAX_NEARBY`]. `visible` says which ones the caller may see.
    pub fn nearby(
        &self,
        of: &Incident,
        rules: &ioc_config::DuplicatesConfig,
        visible: impl Fn(&Incident) -> bool,
    ) -> Vec<Nearby> {
        let radius = rules.radius_for(&of.category);
        let window = rules.window.to_chrono();
        let (lat, lon) = (of.location.lat, of.location.lon);
        // A box around the radius, in degrees; the exact distance decides.
        let dlat = radius / 111_000.0 * 1.01;
        let dlon = dlat / lat.to_radians().cos().abs().max(0.01);
        let envelope = AABB::from_corners([lon - dlon, lat - dlat], [lon + dlon, lat + dlat]);
        let mut out: Vec<Nearby> = self
            .open
            .locate_in_envelope(&envelope)
            .filter(|p| p.data != of.id)
            .filter_map(|p| self.incidents.get(&p.data))
            .filter(|i| i.duplicate_of.is_none() && visible(i))
            .filter_map(|i| {
                let why = rules.relates(&of.category, &i.category)?;
                let distance = metres_between((lat, lon), (i.location.lat, i.location.lon));
                let apart = (i.occurred_at - of.occurred_at).abs();
                (distance <= rules.radius_for(&i.category).max(radius) && apart <= window).then(
                    || Nearby {
                        id: i.id.clone(),
                        category: i.category.clone(),
                        status: i.status,
                        source: match i.source {
                            ioc_schema::Source::Report { .. } => "report",
                            ioc_schema::Source::Camera { .. } => "camera",
                        },
                        distance_m: (distance * 10.0).round() / 10.0,
                        seconds_apart: apart.num_seconds(),
                        why: format!(
                            "{why} ({}), {:.0} m and {} apart",
                            i.category,
                            distance,
                            humantime::format_duration(std::time::Duration::from_secs(
                                apart.num_seconds().unsigned_abs() / 60 * 60
                            ))
                        ),
                    },
                )
            })
            .collect();
        out.sort_by(|a, b| {
            a.distance_m
                .total_cmp(&b.distance_m)
                .then(a.seconds_apart.cmp(&b.seconds_apart))
                .then_with(|| a.id.cmp(&b.id))
        });
        out.truncate(MAX_NEARBY);
        out
    }

    pub fn iter(&self) -> impl Iterator<Item = &Incident> {
        self.incidents.values()
    }

    pub fn get(&self, id: &str) -> Option<&Incident> {
        self.incidents.get(id)
    }

    pub fn len(&self) -> usize {
        self.incidents.len()
    }

    pub fn is_empty(&self) -> bool {
        self.incidents.is_empty()
    }

    /// Matching incidents, newest first (by time of occurrence, then id), paginated.
    pub fn query(&self, q: &Query, max_page: usize) -> Page<'_> {
        let mut hits: Vec<&Incident> = self.incidents.values().filter(|i| q.matches(i)).collect();
        hits.sort_unstable_by(|a, b| {
            b.occurred_at
                .cmp(&a.occurred_at)
                .then_with(|| a.id.cmp(&b.id))
        });
        let total = hits.len();
        let offset = q.offset.unwrap_or(0).min(total);
        let limit = q.limit.unwrap_or(100).clamp(1, max_page);
        let items: Vec<&Incident> = hits.into_iter().skip(offset).take(limit).collect();
        let next = offset + items.len();
        Page {
            total,
            offset,
            next_offset: (next < total).then_some(next),
            items,
        }
    }

    /// Open incidents matching `q` that wait for a ward unit, earliest due first (the most
    /// overdue at the top).
    pub fn open_work(&self, q: &Query, max_page: usize) -> Vec<&Incident> {
        let mut hits: Vec<&Incident> = self
            .incidents
            .values()
            .filter(|i| q.matches(i) && i.ward.is_some())
            .filter(|i| {
                matches!(
                    i.status,
                    Status::Assigned | Status::Acknowledged | Status::InProgress | Status::Reopened
                )
            })
            .collect();
        // The earliest deadline still pending: acknowledgement while unacknowledged, else resolution.
        let due = |i: &Incident| match (i.status, i.ack_due_at) {
            (Status::Assigned | Status::Reopened, Some(ack)) => ack.min(i.sla_due_at),
            _ => i.sla_due_at,
        };
        hits.sort_unstable_by(|a, b| due(a).cmp(&due(b)).then_with(|| a.id.cmp(&b.id)));
        hits.truncate(q.limit.unwrap_or(100).clamp(1, max_page));
        hits
    }

    /// Counts by ward × status × category, over incidents matching `q`.
    pub fn stats(&self, q: &Query) -> Stats {
        let mut s = Stats {
            total: 0,
            by_status: BTreeMap::new(),
            by_ward: BTreeMap::new(),
        };
        for i in self.incidents.values().filter(|i| q.matches(i)) {
            s.total += 1;
            *s.by_status.entry(i.status.as_str()).or_default() += 1;
            let ward = i
                .ward
                .as_ref()
                .map_or("unassigned".to_string(), |w| w.id.clone());
            *s.by_ward
                .entry(ward)
                .or_default()
                .entry(i.status.as_str())
                .or_default()
                .entry(i.category.clone())
                .or_default() += 1;
        }
        s
    }

    /// Per-ward counts by status, for the map.
    /// Owns its keys, so the caller can let go of the view's lock before using them.
    pub fn ward_counts(&self) -> HashMap<String, BTreeMap<&'static str, usize>> {
        let mut out: HashMap<String, BTreeMap<&'static str, usize>> = HashMap::new();
        for i in self.incidents.values() {
            if let Some(w) = &i.ward {
                *out.entry(w.id.clone())
                    .or_default()
                    .entry(i.status.as_str())
                    .or_default() += 1;
            }
        }
        out
    }

    /// Incidents by status, for the gauge metric.
    pub fn status_counts(&self) -> BTreeMap<Status, usize> {
        let mut out = BTreeMap::new();
        for i in self.incidents.values() {
            *out.entry(i.status).or_default() += 1;
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::Duration;
    use ioc_schema::fixtures::incident;

    fn at(
        view: &mut View,
        id: &str,
        category: &str,
        lat: f64,
        lon: f64,
        minutes: i64,
        status: Status,
    ) {
        let t = DateTime::from_timestamp(1_764_730_800, 0).unwrap() + Duration::minutes(minutes);
        let mut i = incident(id, status, "P001", t);
        i.category = category.into();
        i.location.lat = lat;
        i.location.lon = lon;
        i.revision = view.get(id).map_or(1, |o| o.revision + 1);
        view.apply(i);
    }

    /// The index's answer against every open incident checked by hand.
    #[test]
    fn nearby_offers_the_closest_open_ones_of_related_categories() {
        let rules = ioc_config::DuplicatesConfig {
            radius_m: 250.0,
            window: ioc_config::Dur(std::time::Duration::from_secs(86_400)),
            radius_m_by_category: [("environment".to_string(), 500.0)].into(),
            related: vec![vec!["environment".into(), "urban_order".into()]],
        };
        let mut v = View::default();
        let (lat, lon) = (20.5400, 105.9100);
        // ~111 m per 0.001° of latitude.
        at(&mut v, "x", "environment", lat, lon, 0, Status::Assigned);
        at(
            &mut v,
            "near",
            "environment",
            lat + 0.001,
            lon,
            10,
            Status::Assigned,
        );
        at(
            &mut v,
            "related",
            "urban_order",
            lat + 0.002,
            lon,
            30,
            Status::New,
        );
        at(
            &mut v,
            "far",
            "environment",
            lat + 0.006,
            lon,
            5,
            Status::Assigned,
        );
        at(
            &mut v,
            "other",
            "traffic_order",
            lat,
            lon,
            0,
            Status::Assigned,
        );
        at(
            &mut v,
            "late",
            "environment",
            lat,
            lon,
            60 * 30,
            Status::Assigned,
        );
        at(
            &mut v,
            "closed",
            "environment",
            lat,
            lon,
            0,
            Status::Assigned,
        );
        at(&mut v, "closed", "environment", lat, lon, 0, Status::Closed);
        for n in 0..8 {
            at(
                &mut v,
                &format!("crowd{n}"),
                "environment",
                lat - 0.0001 * f64::from(n + 1),
                lon,
                1,
                Status::Assigned,
            );
        }
        let x = v.get("x").unwrap().clone();
        let ids = |found: Vec<Nearby>| found.into_iter().map(|n| n.id).collect::<Vec<_>>();
        assert_eq!(
            ids(v.nearby(&x, &rules, |_| true)),
            ["crowd0", "crowd1", "crowd2", "crowd3", "crowd4"]
        );
        let few = v.nearby(&x, &rules, |i| !i.id.starts_with("crowd"));
        let found: Vec<_> = few
            .iter()
            .map(|n| (n.id.as_str(), n.distance_m.round()))
            .collect();
        assert_eq!(found, [("near", 111.0), ("related", 222.0)], "{few:?}");
        assert!(few[0].why.starts_with("same category"), "{}", few[0].why);
        assert!(
            few[1].why.starts_with("related categories"),
            "{}",
            few[1].why
        );
        assert_eq!(few[0].seconds_apart, 600);
        // Closing takes an incident out of the index; reopening one of the crowd moves it.
        assert!(v
            .nearby(&x, &rules, |_| true)
            .iter()
            .all(|n| n.id != "closed"));
        at(
            &mut v,
            "crowd0",
            "environment",
            lat + 0.01,
            lon,
            1,
            Status::Reopened,
        );
        assert!(v
            .nearby(&x, &rules, |_| true)
            .iter()
            .all(|n| n.id != "crowd0"));
    }

    #[test]
    fn metres_between_known_points() {
        // One degree of latitude is about 111.2 km.
        assert!((metres_between((20.0, 105.0), (21.0, 105.0)) - 111_195.0).abs() < 50.0);
        assert_eq!(metres_between((20.0, 105.0), (20.0, 105.0)), 0.0);
    }
}
