//! A code citation as a link to the lines on the forge, for pull request bodies.

use super::{ForgeKind, RepoRef};

/// The web address of lines `start..=end` of `path` at `commit` in `repo`:
/// GitHub `{web}/{owner}/{repo}/blob/{commit}/{path}#L{start}-L{end}`, Gitea/Forgejo
/// `{web}/{owner}/{repo}/src/commit/{commit}/{path}#L{start}-L{end}`; one line is `#L{start}`.
///
/// `web_base` is the forge's web address (`https://github.com`, `https://gitea.example.com`),
/// not its API address. Pass a commit id, not a branch: the link must keep pointing at the
/// lines that were cited after the branch moves on (and Gitea's `src/commit/` takes only
/// commits). Each path segment is percent-encoded, so spaces, `#` and `?` in file names do not
/// break the link.
pub fn citation_link(
    kind: ForgeKind,
    web_base: &str,
    repo: &RepoRef,
    commit: &str,
    path: &str,
    start: u32,
    end: u32,
) -> String {
    let view = match kind {
        ForgeKind::GitHub => "blob",
        ForgeKind::Gitea => "src/commit",
    };
    let lines = if end <= start { format!("L{start}") } else { format!("L{start}-L{end}") };
    format!(
        "{}/{}/{}/{view}/{}/{}#{lines}",
        web_base.trim_end_matches('/'),
        encode_segment(&repo.owner),
        encode_segment(&repo.name),
        encode_path(commit),
        encode_path(path.trim_start_matches("./").trim_start_matches('/')),
    )
}

fn encode_path(path: &str) -> String {
    path.split('/').filter(|s| !s.is_empty()).map(encode_segment).collect::<Vec<_>>().join("/")
}

/// RFC 3986 unreserved characters stay; every other byte is `%XX`.
fn encode_segment(segment: &str) -> String {
    let mut out = String::with_capacity(segment.len());
    for byte in segment.bytes() {
        if byte.is_ascii_alphanumeric() || matches!(byte, b'-' | b'.' | b'_' | b'~') {
            out.push(byte as char);
        } else {
            out.push_str(&format!("%{byte:02X}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn links_to_the_lines_on_each_forge() {
        let repo = RepoRef::new("octo", "hello");
        let sha = "0123abc";
        let cases: &[(ForgeKind, &str, &str, u32, u32, &str)] = &[
            (
                ForgeKind::GitHub,
                "https://github.com",
                "src/main.rs",
                3,
                9,
                "https://github.com/octo/hello/blob/0123abc/src/main.rs#L3-L9",
            ),
            (
                ForgeKind::Gitea,
                "https://git.example.com/forge/",
                "src/main.rs",
                3,
                9,
                "https://git.example.com/forge/octo/hello/src/commit/0123abc/src/main.rs#L3-L9",
            ),
            (
                ForgeKind::GitHub,
                "https://github.com",
                "docs/a b#c?.md",
                7,
                7,
                "https://github.com/octo/hello/blob/0123abc/docs/a%20b%23c%3F.md#L7",
            ),
            (
                ForgeKind::Gitea,
                "https://g.example",
                "./dir/é.rs",
                1,
                2,
                "https://g.example/octo/hello/src/commit/0123abc/dir/%C3%A9.rs#L1-L2",
            ),
        ];
        for (kind, web, path, start, end, want) in cases {
            assert_eq!(citation_link(*kind, web, &repo, sha, path, *start, *end), *want);
        }
    }
}
