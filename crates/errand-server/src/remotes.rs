//! Repositories that live elsewhere (design: "Repositories from anywhere"): a task may name an
//! HTTPS, SSH or `file://` URL instead of a path on this machine. Its mirror on this machine
//! (`errand_git::Mirror`) is fetched when the task is created and before each attempt that
//! lacks the task's commit, and the sandbox checks the commit out of the mirror like out of any
//! repository. Credentials are configured per host on the server and reach only the host-side
//! `git fetch`, through its environment: never the sandbox, a URL, a log or an error.

use std::path::{Path, PathBuf};

use errand_git::{Credentials, Mirror, RemoteUrl, Repo};

/// Where a task's repository is.
#[derive(Debug)]
pub enum RepositorySource {
    /// A path on the server's machine.
    Local(PathBuf),
    /// A remote, through its mirror.
    Remote(RemoteUrl),
}

impl RepositorySource {
    /// What a user typed: a URL when it looks like one (`scheme://…` or `user@host:path`), a
    /// path otherwise. A URL that is malformed or unsafe is an error that says what to do.
    pub fn parse(text: &str) -> Result<RepositorySource, String> {
        let scp_like = !text.starts_with('/')
            && text
                .split_once(':')
                .is_some_and(|(host, _)| host.contains('@') && !host.contains('/'));
        if text.contains("://") || scp_like {
            RemoteUrl::parse(text).map(RepositorySource::Remote).map_err(|e| e.to_string())
        } else {
            Ok(RepositorySource::Local(PathBuf::from(text)))
        }
    }
}

/// Mirrors of remote repositories and the credentials for their hosts.
#[derive(Debug, Clone)]
pub struct Remotes {
    mirrors_dir: PathBuf,
    credentials: Vec<(String, Credentials)>,
    /// Hosts a task may name; empty: any.
    allowed_hosts: Vec<String>,
}

impl Remotes {
    /// Mirrors under `mirrors_dir` (absolute), no credentials, any host.
    pub fn new(mirrors_dir: impl Into<PathBuf>) -> Remotes {
        Remotes {
            mirrors_dir: mirrors_dir.into(),
            credentials: Vec::new(),
            allowed_hosts: Vec::new(),
        }
    }

    /// Uses `credentials` for every remote on `host` (as `RemoteUrl::host` spells it).
    pub fn with_credentials(
        mut self,
        host: impl Into<String>,
        credentials: Credentials,
    ) -> Remotes {
        self.credentials.push((host.into().to_ascii_lowercase(), credentials));
        self
    }

    /// Only these hosts may be named (a server several people use should not fetch from
    /// wherever a caller points it, its own network included).
    pub fn allow_hosts(mut self, hosts: Vec<String>) -> Remotes {
        self.allowed_hosts = hosts.into_iter().map(|h| h.to_ascii_lowercase()).collect();
        self
    }

    pub fn mirrors_dir(&self) -> &Path {
        &self.mirrors_dir
    }

    /// Whether a task may name `url`: its host is allowed. `file://` URLs name this machine's
    /// paths and are the caller's to confine (repository roots).
    pub fn check(&self, url: &RemoteUrl) -> Result<(), String> {
        match url.host() {
            Some(host)
                if !self.allowed_hosts.is_empty()
                    && !self
                        .allowed_hosts
                        .iter()
                        .any(|allowed| allowed == &host.to_ascii_lowercase()) =>
            {
                Err(format!(
                    "{} is not a host this server fetches from (git.allowed_hosts: {})",
                    host,
                    self.allowed_hosts.join(", ")
                ))
            }
            _ => Ok(()),
        }
    }

    /// The mirror of `url` (not fetched).
    pub fn mirror(&self, url: &RemoteUrl) -> Mirror {
        Mirror::new(&self.mirrors_dir, url.clone())
    }

    /// The credentials configured for `url`'s host.
    pub fn credentials_for(&self, url: &RemoteUrl) -> Credentials {
        self.credentials(url)
    }

    /// Whether credentials are configured for `host`.
    pub fn has_credentials(&self, host: &str) -> bool {
        self.credentials.iter().any(|(configured, _)| configured.eq_ignore_ascii_case(host))
    }

    fn credentials(&self, url: &RemoteUrl) -> Credentials {
        let host = url.host().map(str::to_ascii_lowercase);
        self.credentials
            .iter()
            .find(|(configured, _)| Some(configured) == host.as_ref())
            .map(|(_, credentials)| credentials.clone())
            .unwrap_or(Credentials::None)
    }

    /// The mirror of `url`, fetched now, as a repository to resolve refs in and check out from.
    pub async fn fetch(&self, url: &RemoteUrl) -> Result<Repo, String> {
        self.check(url)?;
        let mirror = Mirror::new(&self.mirrors_dir, url.clone());
        mirror
            .fetch(&self.credentials(url))
            .await
            .map_err(|e| format!("cannot fetch {}: {e}", url.display()))?;
        Repo::discover(mirror.path())
            .await
            .map_err(|e| format!("the mirror of {}: {e}", url.display()))
    }

    /// The mirror of `url` holding `commit`: fetched only when the commit is not there yet.
    pub async fn with_commit(&self, url: &RemoteUrl, commit: &str) -> Result<Repo, String> {
        self.check(url)?;
        let mirror = Mirror::new(&self.mirrors_dir, url.clone());
        if let Ok(repo) = Repo::discover(mirror.path()).await
            && repo.resolve_commit(commit).await.is_ok()
        {
            return Ok(repo);
        }
        let repo = self.fetch(url).await?;
        repo.resolve_commit(commit).await.map_err(|_| {
            format!("{} no longer has commit {commit} (was it force-pushed away?)", url.display())
        })?;
        Ok(repo)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_and_urls_are_told_apart() {
        for (text, remote) in [
            ("/srv/git/project", false),
            ("/srv/git/with:colon", false),
            ("relative/path", false),
            ("https://example.com/o/r.git", true),
            ("git@example.com:o/r.git", true),
            ("ssh://git@example.com/o/r", true),
            ("file:///srv/git/r", true),
        ] {
            let parsed = RepositorySource::parse(text).unwrap();
            assert_eq!(matches!(parsed, RepositorySource::Remote(_)), remote, "{text}");
        }
        let refused = RepositorySource::parse("https://user:s3cret@example.com/o/r").unwrap_err();
        assert!(!refused.contains("s3cret"), "{refused}");
        assert!(RepositorySource::parse("ext::sh -c evil://x").is_err());
    }

    #[test]
    fn hosts_can_be_confined_and_credentials_follow_the_host() {
        let remotes = Remotes::new("/m")
            .with_credentials("Example.com", Credentials::token("t0ken-value"))
            .allow_hosts(vec!["example.com".into()]);
        let allowed = RemoteUrl::parse("https://EXAMPLE.com/o/r").unwrap();
        assert!(remotes.check(&allowed).is_ok());
        assert!(matches!(remotes.credentials(&allowed), Credentials::Token { .. }));
        let other = RemoteUrl::parse("https://169.254.169.254/latest").unwrap();
        assert!(remotes.check(&other).unwrap_err().contains("not a host this server fetches from"));
        assert!(matches!(Remotes::new("/m").credentials(&other), Credentials::None));
    }
}
