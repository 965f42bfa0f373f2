//! The `host` base image: a read-only view of the host's `/usr` and of a short list of `/etc`
//! entries programs need, plus generated user, group and hosts files. Instant, for development.
//!
//! `/etc` is a whitelist on purpose: everything else there (shadow, sudoers, ssh keys, package
//! manager credentials such as pip.conf or npmrc, /etc/environment) stays invisible.

use std::ffi::OsString;
use std::path::Path;

/// `/etc` entries shown to the agent when they exist on the host.
const ETC_WHITELIST: &[&str] = &[
    "alternatives",
    "bash.bashrc",
    "ca-certificates",
    "ca-certificates.conf",
    "debian_version",
    "fonts",
    "gai.conf",
    "gitconfig",
    "host.conf",
    "inputrc",
    "ld.so.cache",
    "ld.so.conf",
    "ld.so.conf.d",
    "localtime",
    "magic",
    "magic.mime",
    "mime.types",
    "nsswitch.conf",
    "os-release",
    "perl",
    "profile",
    "profile.d",
    "protocols",
    "services",
    // Not the whole /etc/ssl: /etc/ssl/private holds the host's private keys.
    "ssl/certs",
    "ssl/openssl.cnf",
    "timezone",
];

/// `/etc` entries matched by prefix (versioned directories such as `python3.11`).
const ETC_WHITELIST_PREFIXES: &[&str] = &["python3", "java-"];

/// Top-level directories that merged-usr systems (Debian 12) make symlinks into `/usr`.
const USR_LINKS: &[&str] = &["bin", "sbin", "lib", "lib32", "lib64", "libx32"];

/// The generated files, as (name in the attempt's `etc/`, contents).
pub(crate) fn generated_etc() -> [(&'static str, String); 3] {
    [
        (
            "passwd",
            "root:x:0:0:root:/root:/usr/sbin/nologin\n\
             agent:x:1000:1000:Errand agent:/home/agent:/bin/bash\n\
             nobody:x:65534:65534:nobody:/nonexistent:/usr/sbin/nologin\n"
                .into(),
        ),
        ("group", "root:x:0:\nagent:x:1000:\nnogroup:x:65534:\n".into()),
        (
            "hosts",
            "127.0.0.1\tlocalhost errand\n::1\tlocalhost ip6-localhost ip6-loopback\n".into(),
        ),
    ]
}

/// The bwrap arguments that build the image's file system. `etc` is where the generated files
/// are, as bwrap will see that directory.
pub(crate) fn host_image_args(etc: &Path) -> Vec<OsString> {
    let mut args: Vec<OsString> = Vec::new();
    let mut push = |parts: &[&dyn AsRef<std::ffi::OsStr>]| {
        for part in parts {
            args.push(part.as_ref().to_os_string());
        }
    };
    push(&[&"--ro-bind", &"/usr", &"/usr"]);
    for name in USR_LINKS {
        let host = Path::new("/").join(name);
        match std::fs::symlink_metadata(&host) {
            Ok(meta) if meta.file_type().is_symlink() => {
                if let Ok(target) = std::fs::read_link(&host) {
                    push(&[&"--symlink", &target, &host]);
                }
            }
            Ok(meta) if meta.is_dir() => push(&[&"--ro-bind", &host, &host]),
            _ => {}
        }
    }
    for entry in etc_entries() {
        let host = Path::new("/etc").join(&entry);
        push(&[&"--ro-bind", &host, &host]);
    }
    for (name, _) in generated_etc() {
        push(&[&"--ro-bind", &etc.join(name), &Path::new("/etc").join(name)]);
    }
    args
}

/// The whitelisted `/etc` entries present on this host.
fn etc_entries() -> Vec<OsString> {
    let mut entries: Vec<OsString> = ETC_WHITELIST
        .iter()
        .filter(|name| Path::new("/etc").join(name).exists())
        .map(OsString::from)
        .collect();
    if let Ok(dir) = std::fs::read_dir("/etc") {
        for entry in dir.flatten() {
            let name = entry.file_name();
            let text = name.to_string_lossy();
            if ETC_WHITELIST_PREFIXES.iter().any(|p| text.starts_with(p)) {
                entries.push(name);
            }
        }
    }
    entries.sort();
    entries
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn never_shows_secrets_of_the_host() {
        let args = host_image_args(Path::new("/x/etc"));
        let text: Vec<String> = args.iter().map(|a| a.to_string_lossy().into()).collect();
        for secret in [
            "/etc/shadow",
            "/etc/gshadow",
            "/etc/sudoers",
            "/etc/ssh",
            "/etc/ssl/private",
            "/etc/ssl",
            "/etc/pip.conf",
            "/etc/npmrc",
            "/etc/environment",
            "/root",
        ] {
            assert!(!text.iter().any(|a| a == secret), "{secret} must stay hidden");
        }
        assert!(text.windows(3).any(|w| w == ["--ro-bind", "/x/etc/passwd", "/etc/passwd"]));
        assert!(text.windows(3).any(|w| w == ["--ro-bind", "/usr", "/usr"]));
    }

    #[test]
    fn the_agent_user_is_1000_with_its_home() {
        let [(_, passwd), (_, group), _] = generated_etc();
        assert!(passwd.contains("agent:x:1000:1000:Errand agent:/home/agent:"));
        assert!(group.contains("agent:x:1000:"));
    }
}
