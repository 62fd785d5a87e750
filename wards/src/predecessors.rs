//! Which wards of the previous boundary set each ward of a set was made from, so figures can be
//! asked across a reform: per new unit, with the old wards' incidents counted where their wards
//! went.
//!
//! Published tables list predecessors by name, in their own spelling ("Phường Bến Nghé",
//! "Phường 8 (Quận 3)") while boundary files have their own ("Ben Nghe", "Ward 8" in District 3).
//! An entry is matched to the previous set's wards by id, else by name compared without
//! diacritics, prefix or qualifier ([`ioc_schema::names::core`]); among the wards of that name
//! (Ho Chi Minh City had ten "Ward 8"s), those whose interior lies in the new ward are taken.
//! Entries that match nothing are kept in [`Predecessors::unresolved`] for the operator to see.

use std::collections::HashMap;

use geo::InteriorPoint;
use ioc_schema::names;
use ioc_schema::Incident;

use crate::index::WardIndex;

/// The table, resolved against two indexed sets.
#[derive(Debug, Default)]
pub struct Predecessors {
    /// The version of the set the old wards belong to.
    pub from_set: String,
    /// Old ward id → the new wards (indices into the new set) it went into.
    successors: HashMap<String, Vec<u32>>,
    /// Entries (`new id: listed name`) that matched no old ward.
    pub unresolved: Vec<String>,
}

/// How an incident was placed in a ward of the set figures are asked for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Placed {
    /// Routed or handed over under that set.
    Own,
    /// Its old ward's successor in the predecessors table.
    Table,
    /// By its location (its old ward is not in the table, or the sets are not consecutive).
    Location,
    /// No ward: triage, or outside the set.
    Nowhere,
}

impl Placed {
    pub fn as_str(self) -> &'static str {
        match self {
            Placed::Own => "own",
            Placed::Table => "table",
            Placed::Location => "location",
            Placed::Nowhere => "nowhere",
        }
    }
}

/// Reads the table's rows: the new ward's id, and the listed predecessors.
pub fn parse_csv(
    text: &str,
    id_column: &str,
    list_column: &str,
) -> anyhow::Result<Vec<(String, Vec<String>)>> {
    let mut reader = csv::Reader::from_reader(text.as_bytes());
    let headers = reader.headers()?.clone();
    let column = |name: &str| {
        headers.iter().position(|h| h == name).ok_or_else(|| {
            anyhow::anyhow!(
                "no column '{name}'; the columns are: {}",
                headers.iter().collect::<Vec<_>>().join(", ")
            )
        })
    };
    let (id, list) = (column(id_column)?, column(list_column)?);
    let mut rows = Vec::new();
    for (n, record) in reader.records().enumerate() {
        let record = record.map_err(|e| anyhow::anyhow!("row {}: {e}", n + 2))?;
        let entries = record
            .get(list)
            .unwrap_or("")
            .split([',', ';'])
            .map(str::trim)
            .filter(|e| !e.is_empty())
            .map(String::from)
            .collect();
        rows.push((record.get(id).unwrap_or("").trim().to_string(), entries));
    }
    Ok(rows)
}

impl Predecessors {
    /// Resolves `rows` (from [`parse_csv`]) against the old set (`from_set`, indexed as `old`)
    /// and the new one (`new`).
    pub fn resolve(
        rows: &[(String, Vec<String>)],
        from_set: &str,
        old: &WardIndex,
        new: &WardIndex,
    ) -> Predecessors {
        let by_id: HashMap<&str, usize> = old
            .wards()
            .iter()
            .enumerate()
            .map(|(n, w)| (w.id.as_str(), n))
            .collect();
        let mut by_core: HashMap<String, Vec<usize>> = HashMap::new();
        for (n, w) in old.wards().iter().enumerate() {
            by_core.entry(names::core(&w.name)).or_default().push(n);
        }
        // Where each old ward lies in the new set.
        let lies_in: Vec<Option<u32>> = old
            .wards()
            .iter()
            .map(|w| {
                let p = w.geometry.interior_point()?;
                new.locate(p.x(), p.y()).ward
            })
            .collect();
        let new_index: HashMap<&str, u32> = new
            .wards()
            .iter()
            .enumerate()
            .map(|(n, w)| (w.id.as_str(), n as u32))
            .collect();
        let mut out = Predecessors {
            from_set: from_set.to_string(),
            ..Predecessors::default()
        };
        for (new_id, entries) in rows {
            let Some(&target) = new_index.get(new_id.as_str()) else {
                out.unresolved
                    .push(format!("{new_id}: not a ward of the new set"));
                continue;
            };
            for entry in entries {
                let matched: Vec<usize> = match by_id.get(entry.as_str()) {
                    Some(&n) => vec![n],
                    None => {
                        let named = by_core
                            .get(&names::core(entry))
                            .map_or(&[][..], Vec::as_slice);
                        let inside: Vec<usize> = named
                            .iter()
                            .copied()
                            .filter(|&n| lies_in[n] == Some(target))
                            .collect();
                        match (inside.is_empty(), named) {
                            // A ward split between new units lies mostly in another one, but
                            // it still reaches into this one; a namesake elsewhere does not.
                            (true, &[only])
                                if reaches(&old.wards()[only], &new.wards()[target as usize]) =>
                            {
                                vec![only]
                            }
                            _ => inside,
                        }
                    }
                };
                if matched.is_empty() {
                    out.unresolved.push(format!("{new_id}: {entry}"));
                }
                for n in matched {
                    let to = out.successors.entry(old.wards()[n].id.clone()).or_default();
                    if !to.contains(&target) {
                        to.push(target);
                    }
                }
            }
        }
        out
    }

    /// How many old wards the table places.
    pub fn resolved_wards(&self) -> usize {
        self.successors.len()
    }

    /// The new wards the old ward `id` went into.
    pub fn successors(&self, id: &str) -> &[u32] {
        self.successors.get(id).map_or(&[], Vec::as_slice)
    }
}

/// Whether the bounding boxes of two wards overlap.
fn reaches(a: &crate::rule::Ward, b: &crate::rule::Ward) -> bool {
    use geo::BoundingRect;
    match (a.geometry.bounding_rect(), b.geometry.bounding_rect()) {
        (Some(a), Some(b)) => {
            a.min().x < b.max().x
                && b.min().x < a.max().x
                && a.min().y < b.max().y
                && b.min().y < a.max().y
        }
        _ => false,
    }
}

/// The ward of `set` (an index into its wards) that `incident` counts for: its own when it was
/// routed or handed over under `set`; else its old ward's successor by the table (when `set`
/// has one from the incident's set; of several successors, the one holding its location); else
/// the ward holding its location.
pub fn place(
    incident: &Incident,
    set_version: &str,
    index: &WardIndex,
    table: Option<&Predecessors>,
) -> (Option<u32>, Placed) {
    let Some(ward) = &incident.ward else {
        return (None, Placed::Nowhere);
    };
    let version = incident.assignment.boundary_version.as_deref();
    let located = || {
        index
            .locate(incident.location.lon, incident.location.lat)
            .ward
    };
    if version == Some(set_version) {
        let own = index.wards().iter().position(|w| w.id == ward.id);
        return match own {
            Some(n) => (Some(n as u32), Placed::Own),
            None => (None, Placed::Nowhere),
        };
    }
    if let Some(t) = table.filter(|t| version == Some(t.from_set.as_str())) {
        match t.successors(&ward.id) {
            [] => {}
            [only] => return (Some(*only), Placed::Table),
            several => {
                let here = located().filter(|w| several.contains(w));
                return (Some(here.unwrap_or(several[0])), Placed::Table);
            }
        }
    }
    match located() {
        Some(w) => (Some(w), Placed::Location),
        None => (None, Placed::Nowhere),
    }
}

#[cfg(test)]
mod tests {
    use geo::{polygon, MultiPolygon};
    use ioc_schema::{fixtures, Status};

    use super::*;
    use crate::rule::{BuildOptions, Ward};

    fn square(id: &str, name: &str, x0: f64, x1: f64) -> Ward {
        Ward {
            id: id.into(),
            name: name.into(),
            geometry: MultiPolygon(vec![polygon![
                (x: x0, y: 0.0), (x: x1, y: 0.0), (x: x1, y: 0.01), (x: x0, y: 0.01)
            ]]),
        }
    }

    /// Old: "Ward 8" twice (in two places), "Ben Nghe" and "Da Kao"; new: two units.
    fn sets() -> (WardIndex, WardIndex) {
        let old = WardIndex::build(
            vec![
                square("101", "Ward 8", 0.0, 0.01),
                square("102", "Ben Nghe", 0.01, 0.02),
                square("103", "Da Kao", 0.02, 0.03),
                square("201", "Ward 8", 0.03, 0.04),
            ],
            BuildOptions::default(),
        );
        let new = WardIndex::build(
            vec![
                square("N1", "Phường Sài Gòn", 0.0, 0.025),
                square("N2", "Phường Tân Định", 0.025, 0.04),
            ],
            BuildOptions::default(),
        );
        (old, new)
    }

    #[test]
    fn names_in_another_spelling_and_repeated_names_resolve_to_the_right_wards() {
        let (old, new) = sets();
        let csv = "code,made_from\nN1,\"Phường 8 (Quận 1), Phường Bến Nghé, Phường Đa Kao\"\nN2,\"Phường Đa Kao, Phường 8 (Quận 3), Phường Nowhere\"\n";
        let rows = parse_csv(csv, "code", "made_from").unwrap();
        let t = Predecessors::resolve(&rows, "2019", &old, &new);
        assert_eq!(t.successors("101"), [0], "the Ward 8 that lies in N1");
        assert_eq!(t.successors("102"), [0]);
        assert_eq!(t.successors("201"), [1], "the Ward 8 that lies in N2");
        // Da Kao straddles both and is listed by both: split between them.
        assert_eq!(t.successors("103"), [0, 1]);
        assert_eq!(t.unresolved, ["N2: Phường Nowhere"]);
        assert!(parse_csv(csv, "id", "made_from")
            .unwrap_err()
            .to_string()
            .contains("the columns are: code, made_from"));
    }

    #[test]
    fn incidents_are_placed_by_their_own_ward_the_table_or_their_location() {
        let (old, new) = sets();
        let rows = vec![("N2".to_string(), vec!["101".to_string()])];
        // A deliberately odd table: old ward 101 went to N2, though it lies in N1.
        let t = Predecessors::resolve(&rows, "2019", &old, &new);
        let at = "2025-01-01T00:00:00Z".parse().unwrap();
        let mut i = fixtures::incident("i", Status::Closed, "101", at);
        i.location.lon = 0.005;
        i.location.lat = 0.005;
        i.assignment.boundary_version = Some("2019".into());
        assert_eq!(place(&i, "2025", &new, Some(&t)), (Some(1), Placed::Table));
        assert_eq!(place(&i, "2025", &new, None), (Some(0), Placed::Location));
        i.ward.as_mut().unwrap().id = "102".into();
        assert_eq!(
            place(&i, "2025", &new, Some(&t)),
            (Some(0), Placed::Location)
        );
        i.ward.as_mut().unwrap().id = "N2".into();
        i.assignment.boundary_version = Some("2025".into());
        assert_eq!(place(&i, "2025", &new, Some(&t)), (Some(1), Placed::Own));
        i.ward = None;
        assert_eq!(place(&i, "2025", &new, Some(&t)), (None, Placed::Nowhere));
    }
}
