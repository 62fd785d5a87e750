//! Files compiled into the binary, addressed as `embedded:<name>` in configuration, so that
//! `ioc demo` runs from any directory on a fresh machine.

use std::borrow::Cow;
use std::path::{Path, PathBuf};

const ASSETS: &[(&str, &str)] = &[
    ("demo/wards.geojson", include_str!("../demo/wards.geojson")),
    ("demo/cameras.csv", include_str!("../demo/cameras.csv")),
    (
        "demo/camera-devices.csv",
        include_str!("../demo/camera-devices.csv"),
    ),
    (
        "demo/wards-reformed.geojson",
        include_str!("../demo/wards-reformed.geojson"),
    ),
];

/// A file named in configuration: either bundled (`embedded:demo/wards.geojson`) or on disk
/// (relative paths are resolved against the configuration file's folder when loading).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FileRef {
    Embedded(&'static str, &'static str),
    Path(PathBuf),
}

impl FileRef {
    /// Resolves a name from configuration; `base` is the configuration file's folder.
    pub fn resolve(name: &str, base: Option<&Path>) -> Result<FileRef, String> {
        if let Some(asset) = name.strip_prefix("embedded:") {
            return ASSETS
                .iter()
                .find(|(n, _)| *n == asset)
                .map(|(n, text)| FileRef::Embedded(n, text))
                .ok_or_else(|| {
                    let known: Vec<_> = ASSETS
                        .iter()
                        .map(|(n, _)| format!("embedded:{n}"))
                        .collect();
                    format!(
                        "no bundled file '{name}'; bundled files are {}",
                        known.join(", ")
                    )
                });
        }
        let path = Path::new(name);
        let path = match base {
            Some(base) if path.is_relative() => base.join(path),
            _ => path.to_path_buf(),
        };
        Ok(FileRef::Path(path))
    }

    /// The file's text.
    pub fn read(&self) -> std::io::Result<Cow<'static, str>> {
        match self {
            FileRef::Embedded(_, text) => Ok(Cow::Borrowed(text)),
            FileRef::Path(p) => std::fs::read_to_string(p).map(Cow::Owned),
        }
    }

    /// Last modification time, for reload checks (bundled files never change).
    pub fn modified(&self) -> Option<std::time::SystemTime> {
        match self {
            FileRef::Embedded(..) => None,
            FileRef::Path(p) => std::fs::metadata(p).and_then(|m| m.modified()).ok(),
        }
    }
}

impl std::fmt::Display for FileRef {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            FileRef::Embedded(n, _) => write!(f, "embedded:{n}"),
            FileRef::Path(p) => write!(f, "{}", p.display()),
        }
    }
}
