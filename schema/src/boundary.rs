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
/// falls back to the id.
pub fn parse_wards(
    text: &str,
    id_property: &str,
    name_property: Option<&str>,
) -> Result<Vec<WardFeature>, BoundaryError> {
    let doc: Value =
        serde_json::from_str(text).map_err(|e| BoundaryError::Json("boundary file".into(), e))?;
    let features = doc
        .get("features")
        .and_then(Value::as_array)
        .ok_or(BoundaryError::NotFeatureCollection)?;
    features
        .iter()
        .enumerate()
        .map(|(index, f)| {
            parse_feature(f, id_property, name_property)
                .map_err(|message| BoundaryError::Feature { index, message })
        })
        .collect()
}

fn property_string(props: &Value, key: &str) -> Option<String> {
    match props.get(key)? {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

fn parse_feature(
    f: &Value,
    id_property: &str,
    name_property: Option<&str>,
) -> Result<WardFeature, String> {
    let props = f.get("properties").unwrap_or(&Value::Null);
    // RFC 7946 gives a feature an `id` of its own; files written that way need no id property.
    let id = property_string(props, id_property)
        .or_else(|| property_string(f, "id"))
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
    let geom = f.get("geometry").ok_or("no geometry")?;
    let coords = geom
        .get("coordinates")
        .ok_or("geometry has no coordinates")?;
    let geometry = match geom.get("type").and_then(Value::as_str) {
        Some("Polygon") => MultiPolygon(vec![parse_polygon(coords)?]),
        Some("MultiPolygon") => MultiPolygon(
            coords
                .as_array()
                .ok_or("MultiPolygon coordinates are not an array")?
                .iter()
                .map(parse_polygon)
                .collect::<Result<_, _>>()?,
        ),
        other => {
            return Err(format!(
                "geometry type {other:?} is not Polygon or MultiPolygon"
            ))
        }
    };
    Ok(WardFeature { id, name, geometry })
}

fn parse_polygon(v: &Value) -> Result<Polygon<f64>, String> {
    let rings = v.as_array().ok_or("polygon is not an array of rings")?;
    let mut rings = rings.iter().map(parse_ring);
    let exterior = rings.next().ok_or("polygon has no rings")??;
    let interiors = rings.collect::<Result<Vec<_>, _>>()?;
    Ok(Polygon::new(exterior, interiors))
}

fn parse_ring(v: &Value) -> Result<LineString<f64>, String> {
    let pts = v.as_array().ok_or("ring is not an array of positions")?;
    let coords = pts
        .iter()
        .map(|p| {
            let p = p
                .as_array()
                .filter(|p| p.len() >= 2)
                .ok_or("position needs two numbers")?;
            match (p[0].as_f64(), p[1].as_f64()) {
                (Some(x), Some(y)) if x.is_finite() && y.is_finite() => Ok(Coord { x, y }),
                _ => Err("position is not two finite numbers"),
            }
        })
        .collect::<Result<Vec<_>, _>>()?;
    if coords.len() < 3 {
        return Err(format!(
            "ring has {} positions; at least 4 are needed",
            coords.len()
        ));
    }
    // LineString is closed by Polygon::new if the file left the ring open.
    Ok(LineString(coords))
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
