//! Reviewing an attempt: the report (title, description, testing checklist) with every
//! citation a link (a code citation opens the file at those lines in the final tree, a log
//! citation the log at that exact range, highlighted; on desktop, hovering shows the cited
//! lines), what to do with it (pull request, patch, `errand apply`, follow-up), and the diff,
//! syntax-highlighted, unified or split, each file collapsible.

use std::collections::HashMap;

use askama::Template;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderValue, header};
use axum::response::IntoResponse;
use errand_protocol::{AttemptId, Citation, CitationTarget, Report};
use errand_store::ArtifactKind;
use serde::Deserialize;

use super::WebState;
use super::attempt::AttemptHeader;
use super::diff::{self, DiffView};
use super::highlight;
use super::html::{escape_into, url_path};
use super::markdown::{self, CitationLinks};
use super::page::{Layout, PageError, PageResult, render};
use super::session::Session;
use super::tasks::attempt_id;

/// Files above this are not shown in the browser (download the patch or open the repository).
const MAX_FILE_BYTES: usize = 2 << 20;

/// The checked citations of an attempt's report, by the text the model wrote, to link them.
pub struct Citations {
    attempt: AttemptId,
    by_raw: HashMap<String, Citation>,
}

impl Citations {
    pub async fn for_attempt(
        state: &WebState,
        session: &Session,
        attempt: AttemptId,
    ) -> PageResult<Citations> {
        let report = report(state, session, attempt).await?;
        Ok(Citations::new(attempt, report.as_ref()))
    }

    fn new(attempt: AttemptId, report: Option<&Report>) -> Citations {
        let by_raw = report
            .map(|r| r.citations.iter().map(|c| (c.raw.clone(), c.clone())).collect())
            .unwrap_or_default();
        Citations { attempt, by_raw }
    }

    /// Where a citation leads.
    pub fn href(&self, target: &CitationTarget) -> String {
        match target {
            CitationTarget::Code { path, start, end } => format!(
                "/attempts/{}/files/{}?lines={start}-{end}#L{start}",
                self.attempt,
                url_path(path)
            ),
            CitationTarget::Log { event, start, end } => {
                format!("/attempts/{}#log-{event}-L{start}-L{end}", self.attempt)
            }
        }
    }
}

impl CitationLinks for Citations {
    fn link(&self, raw: &str, target: &CitationTarget, inner: &str, out: &mut String) {
        let checked = self.by_raw.get(raw);
        let problem = checked.and_then(|c| c.problem.as_ref());
        let class = if problem.is_some() { "cite bad" } else { "cite" };
        out.push_str("<span class=\"cite-wrap\"><a class=\"");
        out.push_str(class);
        out.push_str("\" href=\"");
        escape_into(out, &self.href(target));
        out.push_str("\">");
        out.push_str(inner);
        out.push_str("</a>");
        if let Some(problem) = problem {
            out.push_str(" <span class=\"badge fail\">");
            escape_into(out, &problem.to_string());
            out.push_str("</span>");
        }
        if let Some(excerpt) = checked.map(|c| c.excerpt.as_str()).filter(|e| !e.is_empty()) {
            // Phrasing content only: a <pre> would close the paragraph around the citation.
            out.push_str("<span class=\"preview\" role=\"tooltip\"><code class=\"excerpt\">");
            super::html::terminal_into(out, excerpt);
            out.push_str("</code></span>");
        }
        out.push_str("</span>");
    }
}

/// The attempt's diff as stored (empty while it has none) and as files.
pub async fn diff_of(
    state: &WebState,
    session: &Session,
    attempt: AttemptId,
) -> PageResult<(String, Vec<diff::FileDiff>)> {
    let text = state
        .api
        .store
        .get_artifact(session.scope(), attempt, ArtifactKind::Diff)
        .await?
        .unwrap_or_default();
    let files = diff::parse(&text);
    Ok((text, files))
}

async fn report(
    state: &WebState,
    session: &Session,
    attempt: AttemptId,
) -> PageResult<Option<Report>> {
    let json = state.api.store.get_artifact(session.scope(), attempt, ArtifactKind::Report).await?;
    Ok(json.and_then(|json| serde_json::from_str(&json).ok()))
}

/// One line of the testing checklist.
pub struct CheckRow {
    pub passed: bool,
    pub command: String,
    pub status: String,
    pub href: String,
}

#[derive(Template)]
#[template(path = "review.html")]
struct ReviewPage {
    layout: Layout,
    header: AttemptHeader,
    title: String,
    description: String,
    checks: Vec<CheckRow>,
    flagged: usize,
    citations: usize,
    diff: String,
    files: usize,
    insertions: u64,
    deletions: u64,
    split: bool,
    has_diff: bool,
    apply_command: String,
    why_empty: String,
    /// A forge is configured for the task's repository: pull requests can be opened.
    forge: bool,
    /// The task's pull request, once there is one.
    pull_request: Option<PullRequestLink>,
}

/// The task's pull request as the review shows it.
pub struct PullRequestLink {
    pub label: String,
    pub url: String,
    /// It carries this attempt's result (else another attempt's).
    pub this_attempt: bool,
}

#[derive(Debug, Default, Deserialize)]
pub struct ReviewQuery {
    #[serde(default)]
    view: String,
}

/// The report, the actions and the diff of an attempt.
pub async fn show(
    State(state): State<WebState>,
    session: Session,
    Path(id): Path<String>,
    Query(query): Query<ReviewQuery>,
) -> PageResult {
    let id = attempt_id(&id)?;
    let (mut header, attempt, task) = AttemptHeader::load(&state, &session, id).await?;
    // Switching attempts keeps the review open.
    for sibling in &mut header.siblings {
        sibling.href.push_str("/review");
    }
    let report = report(&state, &session, id).await?;
    let citations = Citations::new(id, report.as_ref());
    let (diff_text, files) = diff_of(&state, &session, id).await?;
    let split = query.view == "split";
    let mut diff_html = String::new();
    diff::render(&files, if split { DiffView::Split } else { DiffView::Unified }, &mut diff_html);
    let checks = report
        .as_ref()
        .map(|r| {
            r.checks
                .iter()
                .map(|c| CheckRow {
                    passed: c.passed,
                    command: c.command.clone(),
                    status: match c.exit_code {
                        Some(code) => format!("exit {code}"),
                        None => "killed".into(),
                    },
                    href: citations.href(&CitationTarget::Log {
                        event: c.event,
                        start: 1,
                        end: c.output_lines.max(1),
                    }),
                })
                .collect()
        })
        .unwrap_or_default();
    let why_empty = if report.is_some() {
        String::new()
    } else if !attempt.state.is_terminal() {
        "The attempt is still working; its report appears here when it finishes.".into()
    } else {
        format!(
            "This attempt ended without a report{}.",
            attempt.reason.as_deref().map(|r| format!(": {r}")).unwrap_or_default()
        )
    };
    let forge = match crate::remotes::RepositorySource::parse(&task.repository) {
        Ok(crate::remotes::RepositorySource::Remote(url)) => {
            state.api.config.forges.for_url(&url).is_some()
        }
        _ => false,
    };
    let pull_request =
        state.api.store.get_pull_request(session.scope(), task.id).await?.map(|record| {
            PullRequestLink {
                label: match record.number {
                    Some(number) => {
                        format!("#{number} on {} ({})", record.repository, record.branch)
                    }
                    None => format!(
                        "branch {} on {} (the pull request is not open yet)",
                        record.branch, record.repository
                    ),
                },
                url: record.url.unwrap_or_default(),
                this_attempt: record.attempt_id == attempt.id,
            }
        });
    let page = ReviewPage {
        forge,
        pull_request,
        layout: Layout::new(
            format!("Review {} {}", header.label, header.prompt_line),
            &session,
            "tasks",
        ),
        title: report.as_ref().map(|r| r.title.clone()).unwrap_or_default(),
        description: report
            .as_ref()
            .map(|r| markdown::render(&r.description, &citations))
            .unwrap_or_default(),
        flagged: report.as_ref().map_or(0, Report::flagged_citations),
        citations: report.as_ref().map_or(0, |r| r.citations.len()),
        checks,
        files: files.len(),
        insertions: files.iter().map(|f| f.insertions).sum(),
        deletions: files.iter().map(|f| f.deletions).sum(),
        diff: diff_html,
        split,
        has_diff: !diff_text.trim().is_empty() && task.mode.as_str() == "code",
        apply_command: format!("errand apply {}", attempt.id),
        why_empty,
        header,
    };
    Ok(render(&page))
}

/// Opens the task's pull request with this attempt's result, or updates it.
pub async fn pull_request(
    State(state): State<WebState>,
    session: Session,
    headers: axum::http::HeaderMap,
    Path(id): Path<String>,
    axum::Form(form): axum::Form<super::page::CsrfForm>,
) -> PageResult {
    super::page::check_form(&session, &headers, &form.csrf)?;
    let id = attempt_id(&id)?;
    crate::api::deliver(&state.api, &session.caller(), id).await?;
    Ok(super::page::see_other(&format!("/attempts/{id}/review#act")))
}

/// The attempt's diff as a file to download (`git apply` / `errand apply-patch` take it).
pub async fn patch(
    State(state): State<WebState>,
    session: Session,
    Path(id): Path<String>,
) -> PageResult {
    let id = attempt_id(&id)?;
    let Some(text) = state.api.store.get_artifact(session.scope(), id, ArtifactKind::Diff).await?
    else {
        state.api.store.get_attempt(session.scope(), id).await?;
        return Err(PageError::not_found("this attempt has no diff (yet)"));
    };
    let mut response = text.into_response();
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static("text/x-diff; charset=utf-8"));
    // The attempt id is `attempt_` and base32: a safe file name.
    if let Ok(value) = HeaderValue::from_str(&format!("attachment; filename=\"{id}.patch\"")) {
        headers.insert(header::CONTENT_DISPOSITION, value);
    }
    Ok(response)
}

#[derive(Template)]
#[template(path = "file.html")]
struct FilePage {
    layout: Layout,
    header: AttemptHeader,
    path: String,
    lines: Vec<FileLine>,
    start: u64,
    end: u64,
    note: String,
    changed: bool,
}

pub struct FileLine {
    pub number: u64,
    pub html: String,
    pub cited: bool,
}

#[derive(Debug, Default, Deserialize)]
pub struct FileQuery {
    #[serde(default)]
    lines: String,
}

/// A file of the attempt's final tree (the base commit with the diff applied), its cited lines
/// highlighted.
pub async fn file(
    State(state): State<WebState>,
    session: Session,
    Path((id, path)): Path<(String, String)>,
    Query(query): Query<FileQuery>,
) -> PageResult {
    let id = attempt_id(&id)?;
    if !is_repository_path(&path) {
        return Err(PageError::bad_request("that is not a path inside the repository"));
    }
    let (header, _, task) = AttemptHeader::load(&state, &session, id).await?;
    let (start, end) = parse_lines(&query.lines);
    let (_, files) = diff_of(&state, &session, id).await?;
    let changed = files.iter().find(|f| f.new_path.as_deref() == Some(path.as_str()));
    let deleted =
        files.iter().any(|f| f.new_path.is_none() && f.old_path.as_deref() == Some(path.as_str()));
    let base_path = changed.and_then(|f| f.old_path.clone()).unwrap_or_else(|| path.clone());
    let mut note = String::new();
    let text = if deleted {
        note = "The attempt deleted this file.".into();
        None
    } else {
        let base = match (&task.base_commit, changed.map(|f| f.old_path.is_none())) {
            (_, Some(true)) => Some(Vec::new()),
            (Some(commit), _) => {
                let repo = errand_git::Repo::discover(std::path::Path::new(&task.repository))
                    .await
                    .map_err(|e| {
                        PageError::not_found(format!("the task's repository cannot be read: {e}"))
                    })?;
                repo.file_at(commit, &base_path).await.map_err(|e| {
                    PageError::not_found(format!("the task's repository cannot be read: {e}"))
                })?
            }
            (None, _) => None,
        };
        match (base, changed) {
            (None, None) => {
                return Err(PageError::not_found("no such file in the attempt's final tree"));
            }
            (None, Some(file)) if file.old_path.is_some() => {
                return Err(PageError::not_found("the base version of this file cannot be read"));
            }
            (base, file) => {
                let base = base.unwrap_or_default();
                match String::from_utf8(base) {
                    Err(_) => {
                        note = "This file is not text.".into();
                        None
                    }
                    Ok(base) => match file {
                        None => Some(base),
                        Some(file) if file.binary => {
                            note = "This file is binary.".into();
                            None
                        }
                        Some(file) => match diff::final_text(&base, file) {
                            Ok(text) => Some(text),
                            Err(e) => {
                                return Err(PageError::not_found(format!(
                                    "the diff does not apply to the repository's copy of this file any more: {e}"
                                )));
                            }
                        },
                    },
                }
            }
        }
    };
    let text = match text {
        Some(text) if text.len() > MAX_FILE_BYTES => {
            note = format!("This file is {} bytes; download the patch to read it.", text.len());
            None
        }
        other => other,
    };
    let lines = text
        .map(|text| {
            highlight::lines(&path, &text)
                .into_iter()
                .zip(1u64..)
                .map(|(html, number)| FileLine {
                    number,
                    html,
                    cited: (start..=end).contains(&number),
                })
                .collect()
        })
        .unwrap_or_default();
    Ok(render(&FilePage {
        layout: Layout::new(path.clone(), &session, "tasks"),
        header,
        path,
        lines,
        start,
        end,
        note,
        changed: changed.is_some(),
    }))
}

/// `10-20`, `10`; anything else cites nothing.
fn parse_lines(text: &str) -> (u64, u64) {
    let number = |s: &str| s.trim().trim_start_matches('L').parse::<u64>().ok();
    match text.split_once('-') {
        Some((a, b)) => match (number(a), number(b)) {
            (Some(a), Some(b)) if a >= 1 && a <= b => (a, b),
            _ => (0, 0),
        },
        None => number(text).filter(|&n| n >= 1).map_or((0, 0), |n| (n, n)),
    }
}

/// A relative path that stays inside the repository: no empty, `.` or `..` segment, no NUL.
fn is_repository_path(path: &str) -> bool {
    !path.is_empty()
        && path.len() <= 4096
        && !path.contains('\0')
        && path.split('/').all(|segment| !matches!(segment, "" | "." | ".."))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn line_ranges_and_paths_are_checked() {
        assert_eq!(parse_lines("10-20"), (10, 20));
        assert_eq!(parse_lines("L3-L4"), (3, 4));
        assert_eq!(parse_lines("7"), (7, 7));
        assert_eq!(parse_lines("9-3"), (0, 0));
        assert_eq!(parse_lines("x"), (0, 0));
        assert!(is_repository_path("src/lib.rs"));
        for bad in ["", "../etc/passwd", "a/../../b", "/etc/passwd", "a//b", "a/./b", "a\0b"] {
            assert!(!is_repository_path(bad), "{bad:?}");
        }
    }

    #[test]
    fn citation_links_stay_on_this_server() {
        let citations = Citations::new(AttemptId::new(), None);
        let href = citations.href(&CitationTarget::Code {
            path: "javascript:alert(1)//\"><x".into(),
            start: 1,
            end: 2,
        });
        assert!(href.starts_with("/attempts/att_"), "{href}");
        assert!(!href.contains('"') && !href.contains('<'), "{href}");
    }
}
