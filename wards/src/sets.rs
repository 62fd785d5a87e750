//! Boundary sets with validity periods. Ward maps change (Chicago redrew its wards on 2023-05-15;
//! Vietnam merged communes on 2025-07-01). The router routes an incident with the set in force
//! when it was received, open incidents move to a new set when it takes effect
//! ([`crate::reform`]), and `ioc wards locate --time-col` judges history by each event's own time.

use std::sync::{Arc, RwLock};
use std::time::Instant;

use chrono::{DateTime, Utc};
use ioc_config::load::Settings;
use ioc_config::supervise::CancellationToken;
use ioc_config::BoundarySetConfig;

use crate::index::WardIndex;
use crate::predecessors::{self, Predecessors};
use crate::rule::{BuildOptions, Ward};

/// Shared, swappable boundary sets: a reload builds new sets off the hot path and swaps the Arc.
pub type SharedSets = Arc<RwLock<Arc<BoundarySets>>>;

/// One boundary set, indexed.
pub struct BoundarySet {
    pub version: String,
    pub valid_from: DateTime<Utc>,
    pub valid_to: Option<DateTime<Utc>>,
    pub index: Arc<WardIndex>,
    /// Where it came from and when that file last changed, to notice edits.
    pub source: String,
    pub modified: Option<std::time::SystemTime>,
    /// Which wards of the set before it each ward was made from, when configured.
    pub predecessors: Option<Arc<Predecessors>>,
}

impl BoundarySet {
    pub fn in_force_at(&self, t: DateTime<Utc>) -> bool {
        self.valid_from <= t && self.valid_to.is_none_or(|to| t < to)
    }
}

/// All configured sets.
#[derive(Default)]
pub struct BoundarySets {
    pub sets: Vec<BoundarySet>,
}

impl BoundarySets {
    /// The set in force at `t`: of those whose period contains `t`, the one that started last.
    pub fn select(&self, t: DateTime<Utc>) -> Option<&BoundarySet> {
        self.sets
            .iter()
            .filter(|s| s.in_force_at(t))
            .max_by_key(|s| s.valid_from)
    }

    /// The set in force now, for serving the current map.
    pub fn current(&self) -> Option<&BoundarySet> {
        self.select(Utc::now())
    }

    /// Loads and indexes every set in the configuration. Sets whose file and modification time
    /// are unchanged from `previous` are reused rather than rebuilt.
    pub fn load(
        settings: &Settings,
        previous: Option<&BoundarySets>,
    ) -> anyhow::Result<BoundarySets> {
        let opts = build_options(settings);
        let mut sets = Vec::new();
        for cfg in &settings.config.boundaries {
            let file = settings.file(&cfg.file).map_err(anyhow::Error::msg)?;
            let modified = file.modified();
            let source = file.to_string();
            let reusable = previous.and_then(|p| {
                p.sets.iter().find(|s| {
                    s.version == cfg.version
                        && s.source == source
                        && s.modified == modified
                        && s.index.options() == opts
                })
            });
            let index = match reusable {
                Some(s) => s.index.clone(),
                None => {
                    let started = Instant::now();
                    let index = Arc::new(load_index(&file, cfg, opts)?);
                    tracing::info!(
                        version = %cfg.version,
                        wards = index.wards().len(),
                        edges = index.edge_count(),
                        took_ms = started.elapsed().as_millis() as u64,
                        "boundary set indexed"
                    );
                    index
                }
            };
            sets.push(BoundarySet {
                version: cfg.version.clone(),
                valid_from: cfg.valid_from,
                valid_to: cfg.valid_to,
                index,
                source,
                modified,
                predecessors: None,
            });
        }
        let mut loaded = BoundarySets { sets };
        for (n, cfg) in settings.config.boundaries.iter().enumerate() {
            if let Some(p) = &cfg.predecessors {
                let table = loaded.predecessors_of(n, settings, p)?;
                loaded.sets[n].predecessors = Some(Arc::new(table));
            }
        }
        Ok(loaded)
    }

    /// Reads and resolves the predecessors table of set `n` against the set in force just
    /// before it.
    fn predecessors_of(
        &self,
        n: usize,
        settings: &Settings,
        cfg: &ioc_config::PredecessorsConfig,
    ) -> anyhow::Result<Predecessors> {
        let set = &self.sets[n];
        let before = set.valid_from - chrono::Duration::nanoseconds(1);
        let previous = self
            .sets
            .iter()
            .filter(|s| s.version != set.version && s.in_force_at(before))
            .max_by_key(|s| s.valid_from)
            .ok_or_else(|| {
                anyhow::anyhow!(
                    "boundary set {} has a predecessors table, but no set is in force just before its valid_from",
                    set.version
                )
            })?;
        let file = settings.file(&cfg.file).map_err(anyhow::Error::msg)?;
        let text = file
            .read()
            .map_err(|e| anyhow::anyhow!("cannot read predecessors table {file}: {e}"))?;
        let rows = predecessors::parse_csv(&text, &cfg.id_column, &cfg.list_column)
            .map_err(|e| anyhow::anyhow!("predecessors table {file}: {e}"))?;
        let table = Predecessors::resolve(&rows, &previous.version, &previous.index, &set.index);
        tracing::info!(
            version = %set.version,
            from = %previous.version,
            old_wards_placed = table.resolved_wards(),
            old_wards = previous.index.wards().len(),
            entries_unmatched = table.unresolved.len(),
            "predecessors table read (old wards it does not place are counted by location)"
        );
        Ok(table)
    }
}

/// The rule's knobs from configuration.
pub fn build_options(settings: &Settings) -> BuildOptions {
    BuildOptions {
        tolerance_m: settings.config.router.boundary_tolerance_m,
        nearest_max_m: settings.config.router.nearest_max_m,
        ..BuildOptions::default()
    }
}

fn load_index(
    file: &ioc_config::assets::FileRef,
    cfg: &BoundarySetConfig,
    opts: BuildOptions,
) -> anyhow::Result<WardIndex> {
    let text = file
        .read()
        .map_err(|e| anyhow::anyhow!("cannot read boundary file {file}: {e}"))?;
    let features =
        ioc_schema::boundary::parse_wards(&text, &cfg.id_property, cfg.name_property.as_deref())
            .map_err(|e| anyhow::anyhow!("boundary file {file}: {e}"))?;
    Ok(WardIndex::build(
        features.into_iter().map(Ward::from).collect(),
        opts,
    ))
}

/// Re-reads the configuration file and boundary files every `router.reload_interval`; when
/// something changed, builds the new sets (reusing unchanged ones) off the async workers and
/// swaps them in. Readers continue on the old sets meanwhile, so nothing stalls. A bad file is
/// logged and the current sets kept. Runs until `stop` is cancelled.
pub async fn watch(
    settings: Arc<Settings>,
    sets: SharedSets,
    stop: CancellationToken,
) -> anyhow::Result<()> {
    let Some(path) = settings.config_path.clone() else {
        return Ok(());
    };
    let interval = settings.config.router.reload_interval.0;
    let mtime = |p: &std::path::Path| std::fs::metadata(p).and_then(|m| m.modified()).ok();
    let mut config_mtime = mtime(&path);
    loop {
        tokio::select! {
            _ = stop.cancelled() => return Ok(()),
            _ = tokio::time::sleep(interval) => {}
        }
        let current = sets.read().expect("sets lock").clone();
        let now_mtime = mtime(&path);
        // Bundled files have no modification time and never change.
        let files_changed = current
            .sets
            .iter()
            .any(|s| s.modified.is_some() && mtime(std::path::Path::new(&s.source)) != s.modified);
        if now_mtime == config_mtime && !files_changed {
            continue;
        }
        config_mtime = now_mtime;
        let path = path.clone();
        let previous = current.clone();
        let loaded = tokio::task::spawn_blocking(move || {
            let fresh =
                Settings::load(Some(&path), std::env::vars()).map_err(anyhow::Error::from)?;
            BoundarySets::load(&fresh, Some(&previous))
        })
        .await;
        match loaded {
            Ok(Ok(new_sets)) => {
                let versions: Vec<_> = new_sets.sets.iter().map(|s| s.version.clone()).collect();
                *sets.write().expect("sets lock") = Arc::new(new_sets);
                tracing::info!(?versions, "boundary sets reloaded");
            }
            Ok(Err(e)) => {
                tracing::error!("boundary reload failed, keeping the current sets: {e:#}")
            }
            Err(e) => tracing::error!("boundary reload task failed: {e}"),
        }
    }
}
