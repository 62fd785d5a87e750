//! Ward boundary files: a GeoJSON FeatureCollection (RFC 7946, WGS84 lon/lat) whose features are
//! Polygons or MultiPolygons with an id property and optionally a name property.

use geo::{Coord, LineString, MultiPolygon, Polygon};
use serde_json::Value;

/// One ward as read from a boundary file.
#[derive(Debug, Clone)]
pub struct WardFeature {
    pub id: String,
    pub name: String,
    pub geometry: MultiPolygon<f64>,
}

/// Why a boundary file or one of its features could not be read.
#[derive(Debug, thiserror::Error)]
pub enum BoundaryError {
    #[error("cannot read {path}: {source}")]
    Io {
        path: String,
        source: std::io::Error,
    },
    #[error("{0} is not valid JSON: {1}")]
    Json(String, serde_json::Error),
    #[error("not a GeoJSON FeatureCollection (no \"features\" array)")]
    NotFeatureCollection,
    #[error("feature {index}: {message}")]
    Feature { index: usize, message: String },
}

/// Reads a boundary file from disk; see [`parse_wards`].
pub fn read_wards(
    path: &std::path::Path,
    id_property: &str,
    name_property: Option<&str>,
) -> Result<Vec<WardFeature>, BoundaryError> {
    let text = std::fs::read_to_string(path).map_err(|source| BoundaryError::Io {
        path: path.display().to_string(),
        source,
    })?;
    parse_wards(&text, id_property, name_property).map_err(|e| match e {
        BoundaryError::Json(_, err) => BoundaryError::Json(path.display().to_string(), err),
        other => other,
    })
}

/// Parses a FeatureCollection. Every feature must have a Polygon or MultiPolygon geometry and the
/// id property (string or number), or else a feature `id` of its own (RFC 7946 §3.2); the name
/// falls back to the id. Positions are read straight into coordinates (no JSON tree of a large
/// map is built first).
pub fn parse_wards(
    text: &str,
    id_property: &str,
    name_property: Option<&str>,
) -> Result<Vec<WardFeature>, BoundaryError> {
    let doc: RawCollection<'_> =
        serde_json::from_str(text).map_err(|e| BoundaryError::Json("boundary file".into(), e))?;
    let features = doc.features.ok_or(BoundaryError::NotFeatureCollection)?;
    features
        .iter()
        .enumerate()
        .map(|(index, f)| {
            parse_feature(f, id_property, name_property)
                .map_err(|message| BoundaryError::Feature { index, message })
        })
        .collect()
}

#[derive(serde::Deserialize)]
struct RawCollection<'a> {
    #[serde(default, borrow)]
    features: Option<Vec<RawFeature<'a>>>,
}

#[derive(serde::Deserialize)]
struct RawFeature<'a> {
    #[serde(default)]
    id: Value,
    #[serde(default)]
    properties: Value,
    #[serde(default, borrow)]
    geometry: Option<&'a serde_json::value::RawValue>,
}

#[derive(serde::Deserialize)]
struct RawGeometry<'a> {
    #[serde(rename = "type")]
    kind: Option<String>,
    #[serde(default, borrow)]
    coordinates: Option<&'a serde_json::value::RawValue>,
}

/// A GeoJSON position: two finite numbers (an altitude or more after them is ignored).
struct Position(Coord<f64>);

impl<'de> serde::Deserialize<'de> for Position {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct Visit;
        impl<'de> serde::de::Visitor<'de> for Visit {
            type Value = Position;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("a position of two finite numbers")
            }
            fn visit_seq<A: serde::de::SeqAccess<'de>>(
                self,
                mut seq: A,
            ) -> Result<Position, A::Error> {
                use serde::de::Error;
                let x: Option<f64> = seq.next_element()?;
                let y: Option<f64> = seq.next_element()?;
                while seq.next_element::<serde::de::IgnoredAny>()?.is_some() {}
                match (x, y) {
                    (Some(x), Some(y)) if x.is_finite() && y.is_finite() => {
                        Ok(Position(Coord { x, y }))
                    }
                    _ => Err(A::Error::custom("position is not two finite numbers")),
                }
            }
        }
        d.deserialize_seq(Visit)
    }
}

fn property_string(props: &Value, key: &str) -> Option<String> {
    match props.get(key)? {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

fn value_string(v: &Value) -> Option<String> {
    match v {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

fn parse_feature(
    f: &RawFeature<'_>,
    id_property: &str,
    name_property: Option<&str>,
) -> Result<WardFeature, String> {
    let props = &f.properties;
    // RFC 7946 gives a feature an `id` of its own; files written that way need no id property.
    let id = property_string(props, id_property)
        .or_else(|| value_string(&f.id))
        .ok_or_else(|| {
            let available: Vec<&str> = props
                .as_object()
                .map(|o| o.keys().map(String::as_str).collect())
                .unwrap_or_default();
            format!(
                "no string or number property '{id_property}' and no feature id; the feature's properties are: {} (name one with --id-property, or id_property in the configuration)",
                if available.is_empty() { "none".to_string() } else { available.join(", ") }
            )
        })?;
    let name = name_property
        .and_then(|n| property_string(props, n))
        .unwrap_or_else(|| id.clone());
    let raw = f.geometry.ok_or("no geometry")?;
    let geom: RawGeometry<'_> =
        serde_json::from_str(raw.get()).map_err(|e| format!("geometry: {e}"))?;
    let coords = geom.coordinates.ok_or("geometry has no coordinates")?.get();
    let geometry = match geom.kind.as_deref() {
        Some("Polygon") => {
            let rings: Vec<Vec<Position>> =
                serde_json::from_str(coords).map_err(|e| format!("Polygon coordinates: {e}"))?;
            MultiPolygon(vec![polygon(rings)?])
        }
        Some("MultiPolygon") => {
            let polys: Vec<Vec<Vec<Position>>> = serde_json::from_str(coords)
                .map_err(|e| format!("MultiPolygon coordinates: {e}"))?;
            MultiPolygon(polys.into_iter().map(polygon).collect::<Result<_, _>>()?)
        }
        other => {
            return Err(format!(
                "geometry type {other:?} is not Polygon or MultiPolygon"
            ))
        }
    };
    Ok(WardFeature { id, name, geometry })
}

fn polygon(rings: Vec<Vec<Position>>) -> Result<Polygon<f64>, String> {
    let mut rings = rings.into_iter().map(ring);
    let exterior = rings.next().ok_or("polygon has no rings")??;
    let interiors = rings.collect::<Result<Vec<_>, _>>()?;
    Ok(Polygon::new(exterior, interiors))
}

fn ring(positions: Vec<Position>) -> Result<LineString<f64>, String> {
    if positions.len() < 3 {
        return Err(format!(
            "ring has {} positions; at least 4 are needed",
            positions.len()
        ));
    }
    // LineString is closed by Polygon::new if the file left the ring open.
    Ok(LineString(positions.into_iter().map(|p| p.0).collect()))
}

/// GeoJSON geometry of a multipolygon, for serving boundaries back out.
pub fn multipolygon_to_geojson(mp: &MultiPolygon<f64>) -> Value {
    let ring = |ls: &LineString<f64>| -> Value {
        Value::Array(ls.0.iter().map(|c| serde_json::json!([c.x, c.y])).collect())
    };
    let poly = |p: &Polygon<f64>| -> Value {
        let mut rings = vec![ring(p.exterior())];
        rings.extend(p.interiors().iter().map(ring));
        Value::Array(rings)
    };
    serde_json::json!({
        "type": "MultiPolygon",
        "coordinates": mp.0.iter().map(poly).collect::<Vec<_>>(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_polygons_multipolygons_and_numeric_ids() {
        let text = r#"{"type":"FeatureCollection","features":[
          {"type":"Feature","properties":{"ward":7,"n":"Seven"},
           "geometry":{"type":"Polygon","coordinates":[[[0,0],[1,0],[1,1],[0,1],[0,0]]]}},
          {"type":"Feature","properties":{"ward":"8"},
           "geometry":{"type":"MultiPolygon","coordinates":[[[[2,0],[3,0],[3,1],[2,0]]],
                                                            [[[4,0],[5,0],[5,1],[4,0]]]]}}]}"#;
        let wards = parse_wards(text, "ward", Some("n")).unwrap();
        assert_eq!(wards[0].id, "7");
        assert_eq!(wards[0].name, "Seven");
        assert_eq!(wards[1].name, "8");
        assert_eq!(wards[1].geometry.0.len(), 2);
    }

    #[test]
    fn takes_the_feature_id_when_the_property_is_absent_and_names_the_properties_otherwise() {
        let text = r#"{"type":"FeatureCollection","features":[
          {"type":"Feature","id":26740,"properties":{"name":"Sài Gòn"},
           "geometry":{"type":"Polygon","coordinates":[[[0,0],[1,0],[1,1],[0,1],[0,0]]]}}]}"#;
        let wards = parse_wards(text, "id", Some("name")).unwrap();
        assert_eq!(
            (wards[0].id.as_str(), wards[0].name.as_str()),
            ("26740", "Sài Gòn")
        );
        let without = text.replace(r#""id":26740,"#, "");
        let err = parse_wards(&without, "id", None).unwrap_err().to_string();
        assert!(err.contains("the feature's properties are: name"), "{err}");
    }

    #[test]
    fn reports_which_feature_is_broken() {
        let text =
            r#"{"features":[{"properties":{},"geometry":{"type":"Point","coordinates":[0,0]}}]}"#;
        let err = parse_wards(text, "ward", None).unwrap_err().to_string();
        assert!(err.contains("feature 0"), "{err}");
    }
}
