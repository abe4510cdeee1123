//! Where replicas' output goes (`data_dir/logs/<mesh>/<workload>-<replica>.log`) and how to read
//! it back, whole or as it grows, for `aviary logs`.

use std::collections::BTreeMap;
use std::io::{Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};

use crate::WorkloadsError;

/// Most bytes read from one file by one [`LogFollower::poll`], so that a huge log is shown in
/// pieces instead of being loaded whole.
const READ_CHUNK: u64 = 1 << 20;

/// Every mesh's logs. Each mesh has its own directory below, because workload names are unique
/// only within a mesh: two meshes' `web` must not append to one file.
pub fn logs_root(data_dir: &Path) -> PathBuf {
    data_dir.join("logs")
}

/// One mesh's logs: `data_dir/logs/<mesh>`. Mesh names come from the control plane, which
/// allows no `/` and no leading `.` in them, so this stays below `logs_root`.
pub fn log_dir(data_dir: &Path, mesh: &str) -> PathBuf {
    logs_root(data_dir).join(mesh)
}

pub fn log_path(data_dir: &Path, mesh: &str, workload: &str, replica: u32) -> PathBuf {
    log_dir(data_dir, mesh).join(format!("{}.log", crate::replica_id(workload, replica)))
}

/// The meshes that have a log directory, sorted; empty when there are no logs at all.
pub fn meshes_with_logs(data_dir: &Path) -> Result<Vec<String>, WorkloadsError> {
    let root = logs_root(data_dir);
    let entries = match std::fs::read_dir(&root) {
        Ok(entries) => entries,
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(source) => return Err(WorkloadsError::ReadLog { path: root, source }),
    };
    let mut meshes: Vec<String> = entries
        .filter_map(Result::ok)
        .filter(|entry| entry.file_type().is_ok_and(|t| t.is_dir()))
        .filter_map(|entry| entry.file_name().into_string().ok())
        .collect();
    meshes.sort();
    Ok(meshes)
}

/// One replica's log file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReplicaLog {
    pub replica: u32,
    pub path: PathBuf,
}

/// The log files of `workload` (of one replica, or of all), by replica. Workload names may hold
/// `-`, so `web-1.log` belongs to `web` but `web-1-0.log` to `web-1`.
pub fn find_logs(
    data_dir: &Path,
    mesh: &str,
    workload: &str,
    replica: Option<u32>,
) -> Result<Vec<ReplicaLog>, WorkloadsError> {
    let dir = log_dir(data_dir, mesh);
    let no_logs = || WorkloadsError::NoLogs {
        workload: workload.to_string(),
        mesh: mesh.to_string(),
        dir: dir.clone(),
    };
    let entries = match std::fs::read_dir(&dir) {
        Ok(entries) => entries,
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => return Err(no_logs()),
        Err(source) => return Err(WorkloadsError::ReadLog { path: dir, source }),
    };
    let prefix = format!("{workload}-");
    let mut found: Vec<ReplicaLog> = entries
        .filter_map(Result::ok)
        .filter_map(|entry| {
            let name = entry.file_name().into_string().ok()?;
            let index = name.strip_prefix(&prefix)?.strip_suffix(".log")?;
            if index.is_empty() || !index.bytes().all(|b| b.is_ascii_digit()) {
                return None;
            }
            Some(ReplicaLog {
                replica: index.parse().ok()?,
                path: entry.path(),
            })
        })
        .filter(|log| replica.is_none_or(|wanted| log.replica == wanted))
        .collect();
    found.sort_by_key(|log| log.replica);
    if found.is_empty() {
        return Err(no_logs());
    }
    Ok(found)
}

/// Most bytes [`tail`] reads from the end of one file.
const TAIL_BYTES: u64 = 64 * 1024;

/// The last `lines` lines of each replica's log of `workload` (what the console shows) (read from at most the last
/// 64 KiB of each file, so a long line or a huge log costs no more), by replica.
pub fn tail(
    data_dir: &Path,
    mesh: &str,
    workload: &str,
    lines: usize,
) -> Result<Vec<model::wire::ReplicaLogTail>, WorkloadsError> {
    find_logs(data_dir, mesh, workload, None)?
        .into_iter()
        .map(|log| {
            Ok(model::wire::ReplicaLogTail {
                replica: log.replica,
                lines: tail_file(&log.path, lines)?,
            })
        })
        .collect()
}

/// The last `lines` lines of one log file, read from at most its last 64 KiB.
pub fn tail_file(path: &Path, lines: usize) -> Result<Vec<String>, WorkloadsError> {
    let failed = |source| WorkloadsError::ReadLog {
        path: path.to_path_buf(),
        source,
    };
    let mut file = std::fs::File::open(path).map_err(failed)?;
    let len = file.metadata().map_err(failed)?.len();
    let start = len.saturating_sub(TAIL_BYTES);
    file.seek(SeekFrom::Start(start)).map_err(failed)?;
    let mut bytes = Vec::new();
    file.take(TAIL_BYTES)
        .read_to_end(&mut bytes)
        .map_err(failed)?;
    let text = String::from_utf8_lossy(&bytes);
    let mut all: Vec<&str> = text.lines().collect();
    if start > 0 && !all.is_empty() {
        // The first line was cut by where the read began.
        all.remove(0);
    }
    let keep = all.len().saturating_sub(lines);
    Ok(all[keep..].iter().map(|l| l.to_string()).collect())
}

/// One complete line of a replica's log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogLine {
    pub replica: u32,
    pub line: String,
}

/// Reads a workload's logs from the start and then as they grow; new replicas' files are picked
/// up as they appear, and a file that shrank (rewritten) is read again from its start.
pub struct LogFollower {
    data_dir: PathBuf,
    mesh: String,
    workload: String,
    replica: Option<u32>,
    cursors: BTreeMap<u32, Cursor>,
}

#[derive(Default)]
struct Cursor {
    path: PathBuf,
    offset: u64,
    /// Bytes after the last newline read so far.
    partial: Vec<u8>,
}

impl LogFollower {
    /// Fails with [`WorkloadsError::NoLogs`] when the workload has no log yet.
    pub fn new(
        data_dir: &Path,
        mesh: &str,
        workload: &str,
        replica: Option<u32>,
    ) -> Result<LogFollower, WorkloadsError> {
        let mut follower = LogFollower {
            data_dir: data_dir.to_path_buf(),
            mesh: mesh.to_string(),
            workload: workload.to_string(),
            replica,
            cursors: BTreeMap::new(),
        };
        follower.discover()?;
        Ok(follower)
    }

    /// How many replicas' logs are followed (to decide whether lines need a replica prefix).
    pub fn files(&self) -> usize {
        self.cursors.len()
    }

    /// The lines written since the last call (at most `READ_CHUNK` bytes per file): file by
    /// file, in order within each file. Empty when nothing new was written. A last line without
    /// a newline is held back for the next call, unless `to_end` (no more output is awaited).
    pub fn poll(&mut self, to_end: bool) -> Result<Vec<LogLine>, WorkloadsError> {
        // A log that disappeared (data directory cleaned) is not an error while following.
        let _ = self.discover();
        let mut lines = Vec::new();
        for (replica, cursor) in &mut self.cursors {
            for line in cursor.read_lines(to_end)? {
                lines.push(LogLine {
                    replica: *replica,
                    line,
                });
            }
        }
        Ok(lines)
    }

    /// The last lines that had no newline yet; call once when done.
    pub fn finish(&mut self) -> Vec<LogLine> {
        self.cursors
            .iter_mut()
            .filter(|(_, cursor)| !cursor.partial.is_empty())
            .map(|(replica, cursor)| LogLine {
                replica: *replica,
                line: String::from_utf8_lossy(&std::mem::take(&mut cursor.partial)).into_owned(),
            })
            .collect()
    }

    fn discover(&mut self) -> Result<(), WorkloadsError> {
        for log in find_logs(&self.data_dir, &self.mesh, &self.workload, self.replica)? {
            self.cursors.entry(log.replica).or_insert_with(|| Cursor {
                path: log.path,
                ..Cursor::default()
            });
        }
        Ok(())
    }
}

impl Cursor {
    fn read_lines(&mut self, to_end: bool) -> Result<Vec<String>, WorkloadsError> {
        let failed = |source| WorkloadsError::ReadLog {
            path: self.path.clone(),
            source,
        };
        let mut file = match std::fs::File::open(&self.path) {
            Ok(file) => file,
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(source) => return Err(failed(source)),
        };
        let len = file.metadata().map_err(failed)?.len();
        if len < self.offset {
            self.offset = 0;
            self.partial.clear();
        }
        file.seek(SeekFrom::Start(self.offset)).map_err(failed)?;
        let mut chunk = Vec::new();
        file.take(READ_CHUNK)
            .read_to_end(&mut chunk)
            .map_err(failed)?;
        self.offset += chunk.len() as u64;
        let at_end = (chunk.len() as u64) < READ_CHUNK;
        self.partial.extend_from_slice(&chunk);
        let mut lines = Vec::new();
        if let Some(last_newline) = self.partial.iter().rposition(|b| *b == b'\n') {
            let rest = self.partial.split_off(last_newline + 1);
            let complete = std::mem::replace(&mut self.partial, rest);
            lines.extend(
                complete[..complete.len() - 1]
                    .split(|b| *b == b'\n')
                    .map(|line| String::from_utf8_lossy(line).into_owned()),
            );
        }
        if to_end && at_end && !self.partial.is_empty() {
            lines.push(String::from_utf8_lossy(&std::mem::take(&mut self.partial)).into_owned());
        }
        Ok(lines)
    }
}

#[cfg(test)]
mod tests;
