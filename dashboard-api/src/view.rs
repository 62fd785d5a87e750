//! The dashboard's current view of every incident, rebuilt from the incident topic. Updates are
//! upserts by id that keep the highest revision, so replays and duplicates change nothing.

use std::collections::{BTreeMap, HashMap};

use chrono::{DateTime, Utc};
use ioc_schema::{Incident, Status};
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

/// Every incident's latest revision.
#[derive(Default)]
pub struct View {
    incidents: HashMap<String, Incident>,
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
        self.incidents.insert(id.clone(), incident);
        self.incidents.get(&id)
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
