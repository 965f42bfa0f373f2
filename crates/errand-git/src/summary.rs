//! Reading `git diff -z --raw --numstat` into [`FileChange`]s.

use std::collections::HashMap;

use errand_protocol::{FileChange, FileChangeKind};

use crate::command::GitError;

/// One `--raw` record.
#[derive(Debug, PartialEq, Eq)]
struct RawRecord {
    old_mode: String,
    new_mode: String,
    old_id: String,
    new_id: String,
    status: char,
    /// Source path for renames and copies.
    from: Option<String>,
    path: String,
}

/// Parses the output of `git diff -z --raw --numstat` (raw records first, then numstat records).
pub(crate) fn parse_raw_numstat(output: &[u8]) -> Result<Vec<FileChange>, GitError> {
    let bad = |detail: String| GitError::Parse { what: "diff --raw --numstat".into(), detail };
    let mut fields = output.split(|&b| b == 0).map(|f| String::from_utf8_lossy(f));
    let mut raws = Vec::new();
    // (insertions, deletions, binary) by destination path.
    let mut stats: HashMap<String, (u64, u64, bool)> = HashMap::new();
    while let Some(field) = fields.next() {
        if field.is_empty() {
            continue;
        }
        if let Some(header) = field.strip_prefix(':') {
            // ":100644 100755 <old> <new> M" then the path (two paths for R and C).
            let parts: Vec<&str> = header.split(' ').collect();
            let [old_mode, new_mode, old_id, new_id, status] = parts[..] else {
                return Err(bad(format!("raw record `{field}`")));
            };
            let status = status.chars().next().unwrap_or('?');
            let first = fields.next().ok_or_else(|| bad("raw record without a path".into()))?;
            let (from, path) = if matches!(status, 'R' | 'C') {
                let second = fields.next().ok_or_else(|| bad("rename without a target".into()))?;
                (Some(first.into_owned()), second.into_owned())
            } else {
                (None, first.into_owned())
            };
            raws.push(RawRecord {
                old_mode: old_mode.into(),
                new_mode: new_mode.into(),
                old_id: old_id.into(),
                new_id: new_id.into(),
                status,
                from,
                path,
            });
        } else {
            // "<added>\t<deleted>\t<path>" or, for a rename, "<added>\t<deleted>\t" + from + to.
            let mut parts = field.splitn(3, '\t');
            let (Some(added), Some(deleted), Some(path)) =
                (parts.next(), parts.next(), parts.next())
            else {
                return Err(bad(format!("numstat record `{field}`")));
            };
            let path = if path.is_empty() {
                let _from = fields.next();
                fields
                    .next()
                    .ok_or_else(|| bad("numstat rename without a target".into()))?
                    .into_owned()
            } else {
                path.to_string()
            };
            let binary = added == "-" && deleted == "-";
            let parse = |n: &str| n.parse::<u64>().unwrap_or(0);
            stats.insert(path, (parse(added), parse(deleted), binary));
        }
    }
    Ok(raws
        .into_iter()
        .map(|raw| {
            let (insertions, deletions, binary) =
                stats.get(&raw.path).copied().unwrap_or((0, 0, false));
            let kind = match raw.status {
                'A' => FileChangeKind::Added,
                'D' => FileChangeKind::Deleted,
                'R' | 'C' => FileChangeKind::Renamed { from: raw.from.unwrap_or_default() },
                _ if raw.old_id == raw.new_id && raw.old_mode != raw.new_mode => {
                    FileChangeKind::ModeChanged
                }
                _ => FileChangeKind::Modified,
            };
            FileChange { path: raw.path, kind, insertions, deletions, binary }
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn change(path: &str, kind: FileChangeKind, ins: u64, del: u64, binary: bool) -> FileChange {
        FileChange { path: path.into(), kind, insertions: ins, deletions: del, binary }
    }

    #[test]
    fn parses_each_kind_of_change() {
        let a = "a".repeat(40);
        let b = "b".repeat(40);
        let z = "0".repeat(40);
        let raw = [
            format!(":000000 100644 {z} {a} A"),
            "new.txt".into(),
            format!(":100644 100644 {a} {b} M"),
            "mod.txt".into(),
            format!(":100644 000000 {a} {z} D"),
            "gone.txt".into(),
            format!(":100644 100644 {a} {b} R087"),
            "old name.txt".into(),
            "new name.txt".into(),
            format!(":100644 100755 {a} {a} M"),
            "run.sh".into(),
            format!(":000000 100644 {z} {b} A"),
            "img.png".into(),
            "2\t0\tnew.txt".into(),
            "1\t1\tmod.txt".into(),
            "0\t3\tgone.txt".into(),
            "1\t1\t".into(),
            "old name.txt".into(),
            "new name.txt".into(),
            "0\t0\trun.sh".into(),
            "-\t-\timg.png".into(),
        ];
        let output = raw.join("\0") + "\0";
        let files = parse_raw_numstat(output.as_bytes()).unwrap();
        assert_eq!(
            files,
            vec![
                change("new.txt", FileChangeKind::Added, 2, 0, false),
                change("mod.txt", FileChangeKind::Modified, 1, 1, false),
                change("gone.txt", FileChangeKind::Deleted, 0, 3, false),
                change(
                    "new name.txt",
                    FileChangeKind::Renamed { from: "old name.txt".into() },
                    1,
                    1,
                    false
                ),
                change("run.sh", FileChangeKind::ModeChanged, 0, 0, false),
                change("img.png", FileChangeKind::Added, 0, 0, true),
            ]
        );
    }

    #[test]
    fn empty_output_means_no_changes() {
        assert_eq!(parse_raw_numstat(b"").unwrap(), vec![]);
    }

    #[test]
    fn garbled_output_is_an_error() {
        assert!(parse_raw_numstat(b":100644 M\0x\0").is_err());
    }
}
