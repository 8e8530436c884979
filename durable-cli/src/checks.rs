//! `durable check`: judging stored instances against a new build's
//! manifest, from a store, snapshot files or a running service.

use durable_runtime::snapshot::Snapshot;
use durable_runtime::{Description, ListFilter, Phase};

use crate::failure::{EXIT_UNKNOWN, EXIT_WOULD_PARK, Failure, snapshot_failure};
use crate::remote;
use crate::show::print_json;

pub(crate) fn read_manifest(
    path: &std::path::Path,
) -> Result<durable_runtime::check::Manifest, Failure> {
    durable_runtime::check::Manifest::read(path).map_err(|e| Failure {
        code: 1,
        message: e.to_string(),
    })
}

pub(crate) fn entry(
    source: &str,
    d: &Description,
    verdict: durable_runtime::Compatibility,
) -> durable_runtime::check::CheckEntry {
    durable_runtime::check::CheckEntry::new(source, d, verdict)
}

/// `check --snapshots`: needs no store.
pub(crate) fn check_snapshots(
    manifest: &std::path::Path,
    path: &std::path::Path,
    json: bool,
) -> Result<(), Failure> {
    let manifest = read_manifest(manifest)?;
    let files = durable_runtime::check::read_snapshots(path).map_err(|e| Failure {
        code: 1,
        message: e.to_string(),
    })?;
    let mut report = durable_runtime::check::CheckReport::default();
    for (file, set) in files {
        let source = file.display().to_string();
        for snapshot in &set.snapshots {
            let d = snapshot.description().map_err(snapshot_failure)?;
            let verdict = manifest
                .check_snapshot(snapshot)
                .map_err(snapshot_failure)?;
            report.entries.push(entry(&source, &d, verdict));
        }
    }
    finish_check(&report, json)
}

/// `check --url`: the service's unfinished instances, page by page, each
/// exported (its record with its layouts) and checked like a snapshot. An
/// instance that ends between the listing and its export is skipped.
pub(crate) fn check_service(
    manifest: &durable_runtime::check::Manifest,
    client: &remote::Client,
    report: &mut durable_runtime::check::CheckReport,
) -> Result<(), Failure> {
    const PAGE: usize = 500;
    let unfinished = [
        Phase::Running,
        Phase::Sleeping,
        Phase::WaitingForSignal,
        Phase::Parked,
    ];
    for phase in unfinished {
        let mut after = None;
        loop {
            let filter = ListFilter {
                phase: Some(phase),
                after: after.take(),
                limit: PAGE,
                ..ListFilter::default()
            };
            let page = client.list(&filter, None)?;
            for d in &page {
                let bytes = match client.export(&d.id) {
                    Ok(bytes) => bytes,
                    Err(e) if e.code == EXIT_UNKNOWN => continue,
                    Err(e) => return Err(e),
                };
                let snapshot = Snapshot::from_bytes(&bytes).map_err(snapshot_failure)?;
                let verdict = manifest
                    .check_snapshot(&snapshot)
                    .map_err(snapshot_failure)?;
                report.entries.push(entry("service", d, verdict));
            }
            if page.len() < PAGE {
                break;
            }
            after = page.last().map(|d| d.id.clone());
        }
    }
    Ok(())
}

pub(crate) fn finish_check(
    report: &durable_runtime::check::CheckReport,
    json: bool,
) -> Result<(), Failure> {
    if json {
        print_json(report)?;
    } else {
        println!("{report}");
    }
    let parked = report.would_park().len();
    if parked > 0 {
        return Err(Failure {
            code: EXIT_WOULD_PARK,
            message: format!("{parked} instances would be parked by this build"),
        });
    }
    Ok(())
}
