//! The dashboard's current view of every incident, rebuilt from the incident topic. Updates are
//! upserts by id that keep the highest revision, so replays and duplicates change nothing.
//!
//! A city's year is about a million incidents, so each is held in two parts: a [`Row`]'s few
//! fields that every listing, count and monitor pass filters on (strings shared by many
//! incidents, such as categories and ward ids, stored once), and the whole incident as
//! LZ4-compressed JSON against a dictionary of typical records, decoded only for what is
//! answered (a page, one incident, the incidents a figure counts). BENCHMARKS.md has the
//! figures.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::num::NonZeroU32;
use std::sync::Arc;

use chrono::{DateTime, Utc};
use ioc_schema::sla::{self, Escalation, Target};
use ioc_schema::validate::{decode_json, InvalidInput};
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

/// What a [`Query`] filters on, of an incident or of its [`Row`] in the view.
pub trait Filtered {
    fn ward_id(&self) -> Option<&str>;
    fn status(&self) -> Status;
    fn category(&self) -> &str;
    fn occurred_at(&self) -> DateTime<Utc>;
}

impl Filtered for Incident {
    fn ward_id(&self) -> Option<&str> {
        self.ward.as_ref().map(|w| w.id.as_str())
    }
    fn status(&self) -> Status {
        self.status
    }
    fn category(&self) -> &str {
        &self.category
    }
    fn occurred_at(&self) -> DateTime<Utc> {
        self.occurred_at
    }
}

impl Query {
    pub fn matches(&self, i: &impl Filtered) -> bool {
        self.in_ward(i.ward_id()) && self.matches_but_ward(i)
    }

    /// Whether an incident counted in `ward` (`None`: no ward) passes the ward filter.
    pub fn in_ward(&self, ward: Option<&str>) -> bool {
        self.ward
            .as_deref()
            .is_none_or(|w| ward == Some(w) || (w == "unassigned" && ward.is_none()))
    }

    /// Every filter but the ward.
    pub fn matches_but_ward(&self, i: &impl Filtered) -> bool {
        self.status.is_none_or(|s| i.status() == s)
            && self.category.as_deref().is_none_or(|c| i.category() == c)
            && self.since.is_none_or(|t| i.occurred_at() >= t)
            && self.until.is_none_or(|t| i.occurred_at() < t)
    }
}

/// One page of incidents, newest first.
#[derive(Debug, Serialize, JsonSchema)]
pub struct Page {
    pub total: usize,
    pub offset: usize,
    pub items: Vec<Incident>,
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

/// An overdue incident in `GET /v1/overdue`.
#[derive(Debug, Serialize)]
pub struct Overdue {
    /// The target missed first.
    pub target: Target,
    pub due_at: DateTime<Utc>,
    pub overdue_seconds: i64,
    pub incident: Incident,
}

/// Every incident's latest revision, and where the open ones are.
#[derive(Default)]
pub struct View {
    incidents: HashMap<Arc<str>, Entry>,
    /// Open incidents by position (lon, lat in degrees), for nearby duplicates.
    open: RTree<GeomWithData<[f64; 2], Arc<str>>>,
    /// Whether `open` waits for [`View::build_index`] (during a start-up replay, where
    /// loading it once at the end is several times cheaper than inserting one by one).
    index_deferred: bool,
    names: Names,
    /// Incidents whose last record on the topic is an older revision than the one held: a
    /// router that replays a report after a crash writes its revision 1 again, maybe after a
    /// ward unit's changes. On a compacted topic that older record is what would remain, so
    /// the owner writes the held revision again ([`View::behind`]).
    behind: HashSet<Arc<str>>,
}

/// One incident in the view: what is filtered on, and the whole of it packed.
struct Entry {
    summary: Summary,
    packed: Box<[u8]>,
}

/// The fields of an incident that listings, counts, nearby duplicates and the monitor read for
/// every incident.
struct Summary {
    revision: u64,
    occurred_at: DateTime<Utc>,
    sla_due_at: DateTime<Utc>,
    ack_due_at: Option<DateTime<Utc>>,
    resolved_at: Option<DateTime<Utc>>,
    lon: f64,
    lat: f64,
    category: Name,
    ward: Option<Name>,
    boundary_version: Option<Name>,
    status: Status,
    camera: bool,
    duplicate: bool,
    /// Which deadlines as they now stand are recorded as missed: [`ACK_ESCALATED`],
    /// [`RESOLVE_ESCALATED`].
    escalated: u8,
}

const ACK_ESCALATED: u8 = 1;
const RESOLVE_ESCALATED: u8 = 2;

/// Records shaped like the topic's, so that what every incident repeats (field names, common
/// values) compresses to a reference into them.
static DICTIONARY: &[u8] = include_bytes!("view_dictionary.jsonl");

/// Compresses `json` behind its length as four little-endian bytes, through a buffer each
/// thread keeps (so a record costs one allocation, of its packed size).
fn pack(json: &[u8]) -> Box<[u8]> {
    thread_local! {
        static SCRATCH: std::cell::RefCell<Vec<u8>> = const { std::cell::RefCell::new(Vec::new()) };
    }
    SCRATCH.with_borrow_mut(|scratch| {
        let bound = lz4_flex::block::get_maximum_output_size(json.len());
        if scratch.len() < bound {
            scratch.resize(bound, 0);
        }
        let n = lz4_flex::block::compress_into_with_dict(json, scratch, DICTIONARY)
            .expect("the scratch buffer holds the largest compressed size");
        let mut packed = Vec::with_capacity(4 + n);
        packed.extend_from_slice(&(json.len() as u32).to_le_bytes());
        packed.extend_from_slice(&scratch[..n]);
        packed.into_boxed_slice()
    })
}

fn unpack(packed: &[u8]) -> Incident {
    serde_json::from_slice(&unpack_bytes(packed)).expect("the view decodes what it encoded")
}

/// The record `packed` was made from.
fn unpack_bytes(packed: &[u8]) -> Vec<u8> {
    lz4_flex::block::decompress_size_prepended_with_dict(packed, DICTIONARY)
        .expect("the view decompresses what it compressed")
}

/// An incident with its record packed as the view keeps it: what [`View::apply_decoded`] takes.
pub struct Decoded {
    pub incident: Incident,
    packed: Box<[u8]>,
}

impl Decoded {
    /// `incident`, decoded from the record `json`.
    pub fn new(incident: Incident, json: &[u8]) -> Decoded {
        Decoded {
            incident,
            packed: pack(json),
        }
    }
}

/// Records decoded on one thread at least, before [`decode_batch`] uses another.
const RECORDS_PER_THREAD: usize = 128;

fn decode_record(json: &[u8]) -> Result<Decoded, InvalidInput> {
    decode_json::<Incident>(json).map(|i| Decoded::new(i, json))
}

/// Decodes the incident records of `batch` (`payload` gives each one's bytes) and packs them
/// for the view, in order, each beside its message: on tokio's blocking threads, a part per
/// core, when there are enough of them (a start-up replay reads thousands at a time, and this
/// is most of its work; what is left, [`View::apply_decoded`], is one map update each).
pub async fn decode_batch<M: Send + 'static>(
    batch: Vec<M>,
    payload: fn(&M) -> &[u8],
) -> Vec<(M, Result<Decoded, InvalidInput>)> {
    let decode = move |part: Vec<M>| -> Vec<(M, Result<Decoded, InvalidInput>)> {
        part.into_iter()
            .map(|m| {
                let decoded = decode_record(payload(&m));
                (m, decoded)
            })
            .collect()
    };
    if batch.len() <= 1 {
        return decode(batch);
    }
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let parts = cores.min(batch.len() / RECORDS_PER_THREAD).max(1);
    let size = batch.len().div_ceil(parts);
    let mut rest = batch;
    let mut tasks = Vec::with_capacity(parts);
    while !rest.is_empty() {
        let tail = rest.split_off(size.min(rest.len()));
        let part = std::mem::replace(&mut rest, tail);
        tasks.push(tokio::task::spawn_blocking(move || decode(part)));
    }
    let mut all = Vec::new();
    for task in tasks {
        all.extend(task.await.expect("decoding a record does not panic"));
    }
    all
}

/// A string stored once in the view's [`Names`].
type Name = NonZeroU32;

/// Strings many incidents share, each stored once.
#[derive(Default)]
struct Names {
    index: HashMap<Arc<str>, Name>,
    names: Vec<Arc<str>>,
}

impl Names {
    fn intern(&mut self, s: &str) -> Name {
        if let Some(n) = self.index.get(s) {
            return *n;
        }
        let name: Arc<str> = s.into();
        self.names.push(name.clone());
        let n = Name::new(u32::try_from(self.names.len()).expect("fewer than 4 billion names"))
            .expect("counted from one");
        self.index.insert(name, n);
        n
    }

    fn get(&self, n: Name) -> &str {
        &self.names[n.get() as usize - 1]
    }
}

/// One incident of the view as scans see it: its summary, and the whole incident on demand.
#[derive(Clone, Copy)]
pub struct Row<'a> {
    id: &'a Arc<str>,
    entry: &'a Entry,
    names: &'a Names,
}

impl<'a> Row<'a> {
    pub fn id(&self) -> &'a str {
        self.id
    }

    /// The whole incident, decoded.
    pub fn incident(&self) -> Incident {
        unpack(&self.entry.packed)
    }

    pub fn location(&self) -> (f64, f64) {
        (self.entry.summary.lat, self.entry.summary.lon)
    }

    pub fn is_camera(&self) -> bool {
        self.entry.summary.camera
    }

    pub fn sla_due_at(&self) -> DateTime<Utc> {
        self.entry.summary.sla_due_at
    }

    pub fn ack_due_at(&self) -> Option<DateTime<Utc>> {
        self.entry.summary.ack_due_at
    }

    /// The deadlines passed at `now` that it still waits on (see [`sla::overdue`]).
    pub fn overdue(&self, now: DateTime<Utc>) -> Vec<Escalation> {
        let s = &self.entry.summary;
        sla::overdue_by(s.status, s.ack_due_at, s.sla_due_at, now)
    }

    /// Whether [`sla::next_escalation`] has one for it at `now`.
    pub fn escalation_due(&self, now: DateTime<Utc>) -> bool {
        let done = self.entry.summary.escalated;
        self.overdue(now).iter().any(|e| match e.target {
            Target::Acknowledge => done & ACK_ESCALATED == 0,
            Target::Resolve => done & RESOLVE_ESCALATED == 0,
        })
    }

    /// When it was resolved, if it holds a resolution.
    pub fn resolved_at(&self) -> Option<DateTime<Utc>> {
        self.entry.summary.resolved_at
    }

    /// The boundary set it was routed or handed over under.
    pub fn boundary_version(&self) -> Option<&'a str> {
        self.entry
            .summary
            .boundary_version
            .map(|n| self.names.get(n))
    }
}

impl Filtered for Row<'_> {
    fn ward_id(&self) -> Option<&str> {
        self.entry.summary.ward.map(|n| self.names.get(n))
    }
    fn status(&self) -> Status {
        self.entry.summary.status
    }
    fn category(&self) -> &str {
        self.names.get(self.entry.summary.category)
    }
    fn occurred_at(&self) -> DateTime<Utc> {
        self.entry.summary.occurred_at
    }
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

fn point_of(id: &Arc<str>, s: &Summary) -> GeomWithData<[f64; 2], Arc<str>> {
    GeomWithData::new([s.lon, s.lat], id.clone())
}

impl View {
    fn summarise(&mut self, i: &Incident) -> Summary {
        let escalated = |target: Target, due: Option<DateTime<Utc>>| {
            due.is_some_and(|due_at| i.escalations.contains(&Escalation { target, due_at }))
        };
        let mut done = 0;
        if escalated(Target::Acknowledge, i.ack_due_at) {
            done |= ACK_ESCALATED;
        }
        if escalated(Target::Resolve, Some(i.sla_due_at)) {
            done |= RESOLVE_ESCALATED;
        }
        Summary {
            revision: i.revision,
            occurred_at: i.occurred_at,
            sla_due_at: i.sla_due_at,
            ack_due_at: i.ack_due_at,
            resolved_at: i.resolution.as_ref().map(|r| r.at),
            lon: i.location.lon,
            lat: i.location.lat,
            category: self.names.intern(&i.category),
            ward: i.ward.as_ref().map(|w| self.names.intern(&w.id)),
            boundary_version: i
                .assignment
                .boundary_version
                .as_deref()
                .map(|v| self.names.intern(v)),
            status: i.status,
            camera: matches!(i.source, ioc_schema::Source::Camera { .. }),
            duplicate: i.duplicate_of.is_some(),
            escalated: done,
        }
    }

    fn row<'a>(&'a self, id: &'a Arc<str>, entry: &'a Entry) -> Row<'a> {
        Row {
            id,
            entry,
            names: &self.names,
        }
    }

    /// Applies one record; returns the incident back if it changed the view.
    pub fn apply(&mut self, incident: Incident) -> Option<Incident> {
        let json = serde_json::to_vec(&incident).expect("an incident serialises");
        self.apply_encoded(incident, &json)
    }

    /// [`View::apply`] for an incident decoded from `json`, which the view keeps instead of
    /// encoding it again.
    pub fn apply_encoded(&mut self, incident: Incident, json: &[u8]) -> Option<Incident> {
        self.apply_decoded(Decoded::new(incident, json))
    }

    /// [`View::apply`] for a record [`decode_batch`] (or [`Decoded::new`]) made ready.
    pub fn apply_decoded(&mut self, record: Decoded) -> Option<Incident> {
        let Decoded { incident, packed } = record;
        // One lookup for both: whether it is newer, and the id already stored.
        let id: Arc<str> = match self.incidents.get_key_value(incident.id.as_str()) {
            Some((id, old)) if incident.revision < old.summary.revision => {
                self.behind.insert(id.clone());
                return None;
            }
            Some((id, old)) if incident.revision == old.summary.revision => {
                if !self.behind.is_empty() {
                    self.behind.remove(id);
                }
                return None;
            }
            Some((id, _)) => {
                let id = id.clone();
                // Nearly always empty: a replay of a million records pays no hashing for it.
                if !self.behind.is_empty() {
                    self.behind.remove(&id);
                }
                id
            }
            None => incident.id.as_str().into(),
        };
        let entry = Entry {
            summary: self.summarise(&incident),
            packed,
        };
        let open_now = (entry.summary.status.is_open() && !self.index_deferred)
            .then(|| point_of(&id, &entry.summary));
        if let Some(old) = self.incidents.insert(id.clone(), entry) {
            if old.summary.status.is_open() && !self.index_deferred {
                self.open.remove(&point_of(&id, &old.summary));
            }
        }
        if let Some(p) = open_now {
            self.open.insert(p);
        }
        Some(incident)
    }

    /// Leaves the index of open incidents unbuilt until [`View::build_index`]; until then
    /// [`View::nearby`] finds nothing.
    pub fn defer_index(&mut self) {
        self.index_deferred = true;
    }

    /// Builds the index of open incidents at once (bulk loaded) and keeps it up to date from
    /// then on.
    pub fn build_index(&mut self) {
        if !self.index_deferred {
            return;
        }
        let points = self
            .incidents
            .iter()
            .filter(|(_, e)| e.summary.status.is_open())
            .map(|(id, e)| point_of(id, &e.summary))
            .collect();
        self.open = RTree::bulk_load(points);
        self.index_deferred = false;
    }

    /// Open incidents that may be the same thing as `of`: of its category or a related one,
    /// within the category's radius and the time window, nearest first, at most
    /// [`MAX_NEARBY`]. `visible` says which ones the caller may see.
    pub fn nearby(
        &self,
        of: &Incident,
        rules: &ioc_config::DuplicatesConfig,
        visible: impl Fn(&Row<'_>) -> bool,
    ) -> Vec<Nearby> {
        let radius = rules.radius_for(&of.category);
        let window = rules.window.to_chrono();
        let (lat, lon) = (of.location.lat, of.location.lon);
        // A box around the radius, in degrees; the exact distance decides.
        let dlat = radius / 111_000.0 * 1.01;
        let dlon = dlat / lat.to_radians().cos().abs().max(0.01);
        let envelope = AABB::from_corners([lon - dlon, lat - dlat], [lon + dlon, lat + dlat]);
        let mut out: Vec<Nearby> =
            self.open
                .locate_in_envelope(&envelope)
                .filter(|p| *p.data != *of.id)
                .filter_map(|p| {
                    let (id, entry) = self.incidents.get_key_value(&p.data)?;
                    Some(self.row(id, entry))
                })
                .filter(|r| !r.entry.summary.duplicate && visible(r))
                .filter_map(|r| {
                    let why = rules.relates(&of.category, r.category())?;
                    let distance = metres_between((lat, lon), r.location());
                    let apart = (r.occurred_at() - of.occurred_at).abs();
                    (distance <= rules.radius_for(r.category()).max(radius) && apart <= window)
                        .then(|| Nearby {
                            id: r.id().to_string(),
                            category: r.category().to_string(),
                            status: r.status(),
                            source: if r.is_camera() { "camera" } else { "report" },
                            distance_m: (distance * 10.0).round() / 10.0,
                            seconds_apart: apart.num_seconds(),
                            why: format!(
                                "{why} ({}), {:.0} m and {} apart",
                                r.category(),
                                distance,
                                humantime::format_duration(std::time::Duration::from_secs(
                                    apart.num_seconds().unsigned_abs() / 60 * 60
                                ))
                            ),
                        })
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

    /// Every incident's row, in no particular order.
    pub fn rows(&self) -> impl Iterator<Item = Row<'_>> {
        self.incidents.iter().map(|(id, e)| self.row(id, e))
    }

    /// The incident's latest revision, decoded.
    pub fn get(&self, id: &str) -> Option<Incident> {
        self.incidents.get(id).map(|e| unpack(&e.packed))
    }

    /// The incidents whose last record on the topic is older than their latest revision, of
    /// those `mine` takes: each id with its latest revision's record, the very bytes the topic
    /// had, so writing it again repeats that revision exactly.
    pub fn behind(&self, mine: impl Fn(&str) -> bool) -> Vec<(String, Vec<u8>)> {
        self.behind
            .iter()
            .filter(|id| mine(id))
            .filter_map(|id| {
                let entry = self.incidents.get(id)?;
                Some((id.to_string(), unpack_bytes(&entry.packed)))
            })
            .collect()
    }

    /// The status of the incident's latest revision, without decoding it.
    pub fn status(&self, id: &str) -> Option<Status> {
        self.incidents.get(id).map(|e| e.summary.status)
    }

    pub fn len(&self) -> usize {
        self.incidents.len()
    }

    pub fn is_empty(&self) -> bool {
        self.incidents.is_empty()
    }

    /// Matching incidents, newest first (by time of occurrence, then id), paginated.
    pub fn query(&self, q: &Query, max_page: usize) -> Page {
        let mut hits: Vec<Row<'_>> = self.rows().filter(|r| q.matches(r)).collect();
        hits.sort_unstable_by(|a, b| {
            b.occurred_at()
                .cmp(&a.occurred_at())
                .then_with(|| a.id().cmp(b.id()))
        });
        let total = hits.len();
        let offset = q.offset.unwrap_or(0).min(total);
        let limit = q.limit.unwrap_or(100).clamp(1, max_page);
        let items: Vec<Incident> = hits
            .into_iter()
            .skip(offset)
            .take(limit)
            .map(|r| r.incident())
            .collect();
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
    pub fn open_work(&self, q: &Query, max_page: usize) -> Vec<Incident> {
        let mut hits: Vec<Row<'_>> = self
            .rows()
            .filter(|r| q.matches(r) && r.ward_id().is_some())
            .filter(|r| {
                matches!(
                    r.status(),
                    Status::Assigned | Status::Acknowledged | Status::InProgress | Status::Reopened
                )
            })
            .collect();
        // The earliest deadline still pending: acknowledgement while unacknowledged, else resolution.
        let due = |r: &Row<'_>| match (r.status(), r.ack_due_at()) {
            (Status::Assigned | Status::Reopened, Some(ack)) => ack.min(r.sla_due_at()),
            _ => r.sla_due_at(),
        };
        hits.sort_unstable_by(|a, b| due(a).cmp(&due(b)).then_with(|| a.id().cmp(b.id())));
        hits.truncate(q.limit.unwrap_or(100).clamp(1, max_page));
        hits.into_iter().map(|r| r.incident()).collect()
    }

    /// Incidents matching `q` past a deadline at `now`, the longest overdue first: how many,
    /// and the first `limit`.
    pub fn overdue(&self, q: &Query, now: DateTime<Utc>, limit: usize) -> (usize, Vec<Overdue>) {
        let mut hits: Vec<(Escalation, Row<'_>)> = self
            .rows()
            .filter(|r| q.matches(r))
            .filter_map(|r| Some((r.overdue(now).into_iter().next()?, r)))
            .collect();
        hits.sort_by(|(a, ra), (b, rb)| a.due_at.cmp(&b.due_at).then_with(|| ra.id().cmp(rb.id())));
        let total = hits.len();
        let items = hits
            .into_iter()
            .take(limit)
            .map(|(first, r)| Overdue {
                target: first.target,
                due_at: first.due_at,
                overdue_seconds: (now - first.due_at).num_seconds(),
                incident: r.incident(),
            })
            .collect();
        (total, items)
    }

    /// Counts by ward × status × category, over incidents matching `q`.
    pub fn stats(&self, q: &Query) -> Stats {
        let mut s = Stats {
            total: 0,
            by_status: BTreeMap::new(),
            by_ward: BTreeMap::new(),
        };
        for r in self.rows().filter(|r| q.matches(r)) {
            s.total += 1;
            *s.by_status.entry(r.status().as_str()).or_default() += 1;
            *s.by_ward
                .entry(r.ward_id().unwrap_or("unassigned").to_string())
                .or_default()
                .entry(r.status().as_str())
                .or_default()
                .entry(r.category().to_string())
                .or_default() += 1;
        }
        s
    }

    /// Per-ward counts by status, for the map.
    /// Owns its keys, so the caller can let go of the view's lock before using them.
    pub fn ward_counts(&self) -> HashMap<String, BTreeMap<&'static str, usize>> {
        let mut by_name: HashMap<Name, BTreeMap<&'static str, usize>> = HashMap::new();
        for e in self.incidents.values() {
            if let Some(w) = e.summary.ward {
                *by_name
                    .entry(w)
                    .or_default()
                    .entry(e.summary.status.as_str())
                    .or_default() += 1;
            }
        }
        by_name
            .into_iter()
            .map(|(w, counts)| (self.names.get(w).to_string(), counts))
            .collect()
    }

    /// Incidents by status, for the gauge metric.
    pub fn status_counts(&self) -> BTreeMap<Status, usize> {
        let mut out = BTreeMap::new();
        for r in self.rows() {
            *out.entry(r.status()).or_default() += 1;
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

    /// An older revision read after a newer one marks the incident as behind (with the newer
    /// one's exact record to write again); the held revision read again, or a newer one, clears
    /// it.
    #[test]
    fn an_older_record_after_the_latest_marks_the_incident_behind() {
        let t = DateTime::from_timestamp(1_764_730_800, 0).unwrap();
        let mut v = View::default();
        let first = incident("a", Status::Assigned, "P001", t);
        let mut second = first.clone();
        second.revision = 2;
        second.status = Status::Acknowledged;
        let second_record = serde_json::to_vec(&second).unwrap();
        v.apply(first.clone());
        v.apply_encoded(second.clone(), &second_record);
        assert!(v.behind(|_| true).is_empty());
        assert!(
            v.apply(first.clone()).is_none(),
            "an older revision changes nothing"
        );
        assert_eq!(
            v.behind(|_| true),
            vec![("a".to_string(), second_record.clone())]
        );
        assert!(
            v.behind(|id| id != "a").is_empty(),
            "only what the caller owns"
        );
        v.apply_encoded(second.clone(), &second_record);
        assert!(v.behind(|_| true).is_empty(), "the latest read again");
        v.apply(first);
        let mut third = second;
        third.revision = 3;
        v.apply(third);
        assert!(v.behind(|_| true).is_empty(), "a newer revision");
    }

    /// The index's answer against every open incident checked by hand.
    #[test]
    fn nearby_offers_the_closest_open_ones_of_related_categories() {
        let rules = ioc_config::DuplicatesConfig {
            radius_m: 250.0,
            window: ioc_config::Dur(std::time::Duration::from_secs(86_400)),
            radius_m_by_category: [("environment".to_string(), 500.0)].into(),
            related: vec![vec!["environment".into(), "urban_order".into()]],
            auto_attach: Default::default(),
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
        let x = v.get("x").unwrap();
        let ids = |found: Vec<Nearby>| found.into_iter().map(|n| n.id).collect::<Vec<_>>();
        assert_eq!(
            ids(v.nearby(&x, &rules, |_| true)),
            ["crowd0", "crowd1", "crowd2", "crowd3", "crowd4"]
        );
        let few = v.nearby(&x, &rules, |r| !r.id().starts_with("crowd"));
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
        // An index built at once after a replay answers as the one kept up to date.
        let mut replayed = View::default();
        replayed.defer_index();
        for r in v.rows() {
            replayed.apply(r.incident());
        }
        assert!(replayed.nearby(&x, &rules, |_| true).is_empty());
        replayed.build_index();
        assert_eq!(
            ids(replayed.nearby(&x, &rules, |_| true)),
            ids(v.nearby(&x, &rules, |_| true))
        );
    }

    #[test]
    fn the_dictionary_is_made_of_incident_records() {
        let text = std::str::from_utf8(DICTIONARY).unwrap();
        for line in text.lines() {
            let i: Incident = serde_json::from_str(line).unwrap();
            // Written as the topic writes it, so its field names and order are what records repeat.
            assert_eq!(serde_json::to_string(&i).unwrap(), line);
        }
    }

    /// Records decoded on several threads come back in their order, each as decoding it alone
    /// gives, an unreadable one as its error in its place.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn records_decoded_together_come_back_in_order() {
        let t0 = DateTime::from_timestamp(1_764_730_800, 0).unwrap();
        let mut records: Vec<Vec<u8>> = (0..RECORDS_PER_THREAD * 3 + 7)
            .map(|n| {
                let i = incident(
                    &format!("r{n}"),
                    Status::ALL[n % Status::ALL.len()],
                    "P001",
                    t0,
                );
                serde_json::to_vec(&i).unwrap()
            })
            .collect();
        records[5] = b"{\"schema\": 1}".to_vec();
        records[RECORDS_PER_THREAD * 2 + 1] = b"not json".to_vec();
        for n in [0, 1, 2, RECORDS_PER_THREAD, records.len()] {
            let together = decode_batch(records[..n].to_vec(), Vec::as_slice).await;
            assert_eq!(together.len(), n);
            for ((record, got), p) in together.iter().zip(&records) {
                assert_eq!(record, p, "each beside its own record");
                let alone = decode_json::<Incident>(p);
                assert_eq!(got.as_ref().map(|d| &d.incident), alone.as_ref());
                if let Ok(d) = got {
                    assert_eq!(
                        unpack(&d.packed),
                        d.incident,
                        "the packed record is the record"
                    );
                }
            }
        }
        let all = decode_batch(records.clone(), Vec::as_slice).await;
        assert!(all[5].1.is_err() && all[RECORDS_PER_THREAD * 2 + 1].1.is_err());
        let last = all.last().unwrap().1.as_ref().unwrap();
        assert_eq!(last.incident.id, format!("r{}", records.len() - 1));
    }

    /// What the view answers from a row is what the decoded incident says.
    #[test]
    fn a_row_answers_what_its_incident_would() {
        let t0 = DateTime::from_timestamp(1_764_730_800, 0).unwrap();
        let now = t0 + Duration::hours(10);
        let mut all = Vec::new();
        for (n, status) in Status::ALL.into_iter().enumerate() {
            for escalated in 0..3 {
                let mut i = incident(&format!("i{n}-{escalated}"), status, "P001", t0);
                i.category = ["environment", "traffic_order"][n % 2].into();
                i.ack_due_at = Some(t0 + Duration::hours(1));
                i.sla_due_at = t0 + Duration::hours(if n % 3 == 0 { 48 } else { 5 });
                i.escalations = sla::overdue(&i, now);
                i.escalations.truncate(escalated);
                if n % 4 == 0 {
                    i.ward = None;
                }
                i.text = Some("Cống thoát nước bị tắc".into());
                all.push(i);
            }
        }
        let mut v = View::default();
        for i in &all {
            assert!(v.apply(i.clone()).is_some());
            // The same revision again changes nothing.
            assert!(v.apply(i.clone()).is_none());
        }
        let mut due = 0;
        for i in &all {
            assert_eq!(v.get(&i.id).as_ref(), Some(i));
            let r = v.rows().find(|r| r.id() == i.id).unwrap();
            assert_eq!(r.ward_id(), i.ward.as_ref().map(|w| w.id.as_str()));
            assert_eq!((r.status(), r.category()), (i.status, i.category.as_str()));
            assert_eq!(r.overdue(now), sla::overdue(i, now));
            assert_eq!(
                r.escalation_due(now),
                sla::next_escalation(i, now).is_some(),
                "{}",
                i.id
            );
            due += usize::from(r.escalation_due(now));
        }
        // Some are due and some are not, so the comparison above decided something.
        assert!(due > 0 && due < all.len(), "{due}");
    }

    #[test]
    fn metres_between_known_points() {
        // One degree of latitude is about 111.2 km.
        assert!((metres_between((20.0, 105.0), (21.0, 105.0)) - 111_195.0).abs() < 50.0);
        assert_eq!(metres_between((20.0, 105.0), (20.0, 105.0)), 0.0);
    }
}
