//! Damaged shard files: the registry that reads and the scrubber report into
//! (`shoal.damaged_files`, the `shoal_damaged_files` metric), and the scrubber, which re-reads
//! every committed file on its worker at a low rate (`scrub.rate_mb`) and compares it with
//! the size and CRC-32C the catalog recorded.
//!
//! The registry lives in the coordinator's memory: after a restart it fills again as queries
//! and the scrubber meet the damage (each file is re-verified on its first read after a worker
//! restart, and the scrubber walks every file).

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use shoal_shard_store::{FileCheck, FileToVerify};
use tracing::{info, warn};

use crate::cluster::{now_ms, Cluster};
use crate::error::Result;

/// Who found a damaged file.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DamageSource {
    /// A query's scan refused the file.
    Query,
    /// The background scrubber.
    Scrub,
}

impl DamageSource {
    pub fn as_str(self) -> &'static str {
        match self {
            DamageSource::Query => "query",
            DamageSource::Scrub => "scrub",
        }
    }
}

/// Where a file is: worker address, table, shard, file name. Orders the scrubber's walk.
pub type FileLocation = (String, i64, i64, String);

/// One damaged file on one worker.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DamagedFileReport {
    pub worker: String,
    pub table_id: i64,
    pub shard_id: i64,
    pub file: String,
    /// How the file differs from the catalog's record.
    pub damage: String,
    pub found_by: DamageSource,
    /// Unix ms of the latest time it was found.
    pub found_at_ms: i64,
}

impl DamagedFileReport {
    /// A damage found now.
    pub fn found_now(
        worker: &str,
        table_id: i64,
        shard_id: i64,
        file: String,
        damage: String,
        found_by: DamageSource,
    ) -> Self {
        DamagedFileReport {
            worker: worker.to_string(),
            table_id,
            shard_id,
            file,
            damage,
            found_by,
            found_at_ms: now_ms(),
        }
    }
}

/// The damaged files known now, and where the scrubber's walk stands.
#[derive(Debug, Default)]
pub(crate) struct DamageRegistry {
    files: Mutex<BTreeMap<FileLocation, DamagedFileReport>>,
    scrub: Mutex<ScrubPosition>,
}

#[derive(Debug, Default)]
struct ScrubPosition {
    /// The last file verified; the walk goes on after it and wraps around.
    last: Option<FileLocation>,
    /// When the last round ran: its byte budget is the rate times the time since.
    last_round: Option<Instant>,
    /// Bytes allowed but not spent yet (a file larger than one round's budget waits for it).
    credit: u64,
    /// Every committed file with its record, as the catalog had it when read; read again when
    /// the walk has reached its end or it is older than [`LISTING_MAX_AGE`].
    listing: Option<(Instant, Arc<BTreeMap<FileLocation, FileCheck>>)>,
}

/// How long the scrubber walks a file listing before it reads the catalog again: one full
/// read of the catalog a minute at most, however large it is; files committed meanwhile wait
/// for the next listing.
const LISTING_MAX_AGE: Duration = Duration::from_secs(60);

impl DamageRegistry {
    fn files(&self) -> std::sync::MutexGuard<'_, BTreeMap<FileLocation, DamagedFileReport>> {
        self.files.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// The longest a scrub round may save up for; a file larger than that much budget is
/// verified alone when the budget is full, so every file is verified eventually.
const MAX_CREDIT_SECONDS: u64 = 60;

impl Cluster {
    /// Records a damaged file, logging it once per new damage.
    pub fn record_damage(&self, report: DamagedFileReport) {
        let key = (
            report.worker.clone(),
            report.table_id,
            report.shard_id,
            report.file.clone(),
        );
        let mut files = self.damage().files();
        if files.get(&key).map(|r| &r.damage) != Some(&report.damage) {
            warn!(worker = %report.worker, table_id = report.table_id,
                shard_id = report.shard_id, file = %report.file, damage = %report.damage,
                found_by = report.found_by.as_str(), "damaged shard file");
        }
        files.insert(key, report);
    }

    /// Forgets the damage of files the catalog no longer names (`current`: its listing).
    pub(crate) fn forget_stale_damage(&self, current: &BTreeMap<FileLocation, FileCheck>) {
        self.damage()
            .files()
            .retain(|at, _| current.contains_key(at));
    }

    /// Forgets the damage of these shards' files on `worker` (their placement was dropped).
    pub(crate) fn forget_damage(&self, worker: &str, shard_ids: &[i64]) {
        self.damage()
            .files()
            .retain(|(w, _, shard, _), _| !(w == worker && shard_ids.contains(shard)));
    }

    /// The damaged files known now, by worker, table, shard and file.
    pub fn damaged_files(&self) -> Vec<DamagedFileReport> {
        self.damage().files().values().cloned().collect()
    }

    /// Every committed file of every placement, with the catalog's record of it.
    pub(crate) fn file_listing(&self) -> Result<BTreeMap<FileLocation, FileCheck>> {
        let mut all = BTreeMap::new();
        for snapshot in self.catalog().snapshot_all()? {
            for shard in &snapshot.shards {
                for p in &shard.placements {
                    for f in &p.files {
                        let at = (
                            p.addr(),
                            snapshot.table.table_id,
                            shard.shard_id,
                            f.name.clone(),
                        );
                        let check = FileCheck {
                            bytes: f.bytes,
                            checksum: f.checksum,
                        };
                        all.insert(at, check);
                    }
                }
            }
        }
        Ok(all)
    }

    /// One scrubber round: re-verifies the next files of the walk on their workers, as many
    /// as `rate_mb` MB/s allows since the previous round (0 = off). Forgets damage of files
    /// the catalog no longer names or that verify again. Returns the files verified.
    pub async fn scrub_once(&self, rate_mb: u64) -> Result<usize> {
        if rate_mb == 0 {
            let mut pos = self
                .damage()
                .scrub
                .lock()
                .unwrap_or_else(|e| e.into_inner());
            pos.last_round = None;
            pos.credit = 0;
            return Ok(0);
        }
        let cached = {
            let pos = self
                .damage()
                .scrub
                .lock()
                .unwrap_or_else(|e| e.into_inner());
            pos.listing
                .as_ref()
                .filter(|(read, _)| read.elapsed() < LISTING_MAX_AGE)
                .map(|(_, all)| Arc::clone(all))
        };
        let all = match cached {
            Some(all) => all,
            None => {
                let all = Arc::new(self.file_listing()?);
                self.damage().files().retain(|at, _| all.contains_key(at));
                let mut pos = self
                    .damage()
                    .scrub
                    .lock()
                    .unwrap_or_else(|e| e.into_inner());
                pos.listing = Some((Instant::now(), Arc::clone(&all)));
                all
            }
        };

        let batch = {
            let mut pos = self
                .damage()
                .scrub
                .lock()
                .unwrap_or_else(|e| e.into_inner());
            let now = Instant::now();
            let elapsed = pos
                .last_round
                .map_or(0, |t| now.duration_since(t).as_millis() as u64);
            pos.last_round = Some(now);
            let per_second = rate_mb.saturating_mul(1024 * 1024);
            let max_credit = per_second.saturating_mul(MAX_CREDIT_SECONDS);
            pos.credit = pos
                .credit
                .saturating_add(per_second.saturating_mul(elapsed) / 1000)
                .min(max_credit);
            let after = pos.last.clone();
            let walk = all
                .iter()
                .filter(|(at, _)| after.as_ref().is_none_or(|last| *at > last))
                .chain(
                    all.iter()
                        .filter(|(at, _)| after.as_ref().is_some_and(|last| *at <= last)),
                );
            let mut batch = Vec::new();
            for (at, check) in walk {
                // A file larger than the most a round saves up goes alone once it is saved up.
                let saved_up = batch.is_empty() && pos.credit >= max_credit;
                if check.bytes > pos.credit && !saved_up {
                    break;
                }
                pos.credit = pos.credit.saturating_sub(check.bytes);
                pos.last = Some(at.clone());
                batch.push((at.clone(), *check));
            }
            if pos.last.as_ref() == all.keys().next_back() {
                // A pass is complete: the next round walks a fresh listing.
                pos.listing = None;
            }
            batch
        };

        let mut by_worker: BTreeMap<String, Vec<FileToVerify>> = BTreeMap::new();
        for ((worker, table_id, shard_id, name), check) in &batch {
            by_worker
                .entry(worker.clone())
                .or_default()
                .push(FileToVerify {
                    table_id: *table_id,
                    shard_id: *shard_id,
                    name: name.clone(),
                    check: *check,
                });
        }
        let mut verified = 0;
        for (worker, files) in by_worker {
            let asked: BTreeSet<FileLocation> = files
                .iter()
                .map(|f| (worker.clone(), f.table_id, f.shard_id, f.name.clone()))
                .collect();
            let damaged = match self.worker(&worker) {
                Ok(client) => match client.verify_files(files).await {
                    Ok(d) => d,
                    Err(e) => {
                        info!(worker = %worker, error = %e, "scrub round skipped a worker");
                        continue;
                    }
                },
                Err(e) => {
                    info!(worker = %worker, error = %e, "scrub round skipped a worker");
                    continue;
                }
            };
            verified += asked.len();
            let mut bad = BTreeSet::new();
            for d in damaged {
                let at = (worker.clone(), d.table_id, d.shard_id, d.name.clone());
                bad.insert(at);
                self.record_damage(DamagedFileReport::found_now(
                    &worker,
                    d.table_id,
                    d.shard_id,
                    d.name,
                    d.damage,
                    DamageSource::Scrub,
                ));
            }
            self.damage()
                .files()
                .retain(|at, _| !asked.contains(at) || bad.contains(at));
        }
        Ok(verified)
    }
}
