//! A forge's published API description (the subsets in `../shared/conformance/forges/`), read
//! at test time, and the checks of one request against it: the operation by method and path
//! template, authentication, query parameters, and the JSON body against the request schema.

use std::path::{Path, PathBuf};

use serde_json::Value;

use super::Kind;
use super::schema::{resolve, validate};

/// Where the descriptions are shared, beside the workspace (the same from every crate's
/// manifest directory, which is what `env!` gives a library at build time).
pub fn descriptions_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../shared/conformance/forges")
}

pub struct Description {
    pub kind: Kind,
    pub doc: Value,
}

/// An operation found for a request, with the values of its path parameters.
pub struct Operation<'a> {
    pub id: String,
    pub op: &'a Value,
    path_item: &'a Value,
    pub path_params: Vec<(String, String)>,
}

/// What the fake saw, enough to check it.
pub struct Request<'a> {
    pub method: &'a str,
    pub query: &'a [(String, String)],
    pub header: &'a dyn Fn(&str) -> Option<String>,
    pub body: Option<&'a [u8]>,
}

impl Description {
    /// `None` when the file is not there (the caller skips or, under CI, fails).
    pub fn load(kind: Kind) -> Option<Description> {
        let file = match kind {
            Kind::GitHub => "github-subset.json",
            Kind::Gitea => "gitea-subset.json",
        };
        let text = std::fs::read_to_string(descriptions_dir().join(file)).ok()?;
        let doc = serde_json::from_str(&text).unwrap_or_else(|e| panic!("{file} is not JSON: {e}"));
        Some(Description { kind, doc })
    }

    /// The path prefix the description's server lives under: Gitea's `basePath` (`/api/v1`);
    /// GitHub's server is `https://api.github.com`, so none.
    pub fn base_path(&self) -> String {
        self.doc
            .get("basePath")
            .and_then(Value::as_str)
            .unwrap_or("")
            .trim_end_matches('/')
            .to_string()
    }

    pub fn find_operation(&self, method: &str, segments: &[String]) -> Option<Operation<'_>> {
        let paths = self.doc.get("paths")?.as_object()?;
        for (template, path_item) in paths {
            let parts: Vec<&str> = template.trim_start_matches('/').split('/').collect();
            if parts.len() != segments.len() {
                continue;
            }
            let mut params = Vec::new();
            let fits = parts.iter().zip(segments).all(|(part, segment)| {
                match part.strip_prefix('{').and_then(|p| p.strip_suffix('}')) {
                    Some(name) => {
                        params.push((name.to_string(), segment.clone()));
                        !segment.is_empty()
                    }
                    None => part == segment,
                }
            });
            let Some(op) = path_item.get(method.to_ascii_lowercase()) else { continue };
            if fits {
                let id =
                    op.get("operationId").and_then(Value::as_str).unwrap_or(template).to_string();
                return Some(Operation { id, op, path_item, path_params: params });
            }
        }
        None
    }

    fn parameters<'a>(&'a self, operation: &Operation<'a>) -> Vec<&'a Value> {
        [operation.path_item, operation.op]
            .iter()
            .filter_map(|v| v.get("parameters").and_then(Value::as_array))
            .flatten()
            .map(|p| resolve(&self.doc, p))
            .collect()
    }

    /// The schema of a parameter: OpenAPI 3 nests it under `schema`, Swagger 2 inlines it.
    fn parameter_schema<'a>(&self, parameter: &'a Value) -> &'a Value {
        parameter.get("schema").unwrap_or(parameter)
    }

    /// Every way the request departs from the description; empty when it conforms.
    pub fn check_request(
        &self,
        operation: &Operation<'_>,
        request: &Request<'_>,
        token: &str,
    ) -> Vec<String> {
        let mut problems = Vec::new();
        let at = format!("{} {}", request.method, operation.id);
        self.check_auth(request, &at, &mut problems);
        let parameters = self.parameters(operation);
        for (name, value) in &operation.path_params {
            match parameters.iter().find(|p| p["in"] == "path" && p["name"] == name.as_str()) {
                None => problems.push(format!("{at}: path parameter `{name}` is not declared")),
                Some(p) => check_text(
                    &self.doc,
                    self.parameter_schema(p),
                    value,
                    &format!("{at}: path `{name}`"),
                    &mut problems,
                ),
            }
        }
        for (name, value) in request.query {
            if value.contains(token) {
                problems.push(format!("{at}: the token is in the query string (`{name}`)"));
            }
            match parameters.iter().find(|p| p["in"] == "query" && p["name"] == name.as_str()) {
                None => problems.push(format!("{at}: query parameter `{name}` is not declared")),
                Some(p) => {
                    let schema = self.parameter_schema(p);
                    let schema = if schema.get("type") == Some(&Value::from("array")) {
                        &schema["items"]
                    } else {
                        schema
                    };
                    check_text(
                        &self.doc,
                        schema,
                        value,
                        &format!("{at}: query `{name}`"),
                        &mut problems,
                    )
                }
            }
        }
        for p in parameters.iter().filter(|p| p["in"] == "query" && p["required"] == true) {
            if !request.query.iter().any(|(name, _)| p["name"] == name.as_str()) {
                problems.push(format!("{at}: required query parameter {} missing", p["name"]));
            }
        }
        self.check_body(operation, &parameters, request, &at, &mut problems);
        problems
    }

    fn check_auth(&self, request: &Request<'_>, at: &str, problems: &mut Vec<String>) {
        let header = |name: &str| (request.header)(name).unwrap_or_default();
        match self.kind {
            // GitHub's description declares no security scheme; its documentation ("Authenticating
            // to the REST API", "API versions", "Getting started") asks for these.
            Kind::GitHub => {
                if !header("authorization").starts_with("Bearer ") {
                    problems.push(format!("{at}: header authorization should be `Bearer <token>`"));
                }
                for (name, want) in [
                    ("accept", "application/vnd.github+json"),
                    ("x-github-api-version", "2022-11-28"),
                ] {
                    if header(name) != want {
                        problems.push(format!(
                            "{at}: header {name} should be `{want}`, was `{}`",
                            header(name)
                        ));
                    }
                }
                if header("user-agent").is_empty() {
                    problems.push(format!("{at}: no User-Agent (GitHub refuses such requests)"));
                }
            }
            // Gitea declares its schemes; Errand must use the one not marked deprecated:
            // AuthorizationHeaderToken, "API tokens must be prepended with \"token\" followed by a space."
            Kind::Gitea => {
                let scheme = &self.doc["securityDefinitions"]["AuthorizationHeaderToken"];
                assert_eq!(scheme["in"], "header", "Gitea's header token scheme changed");
                let name = scheme["name"].as_str().unwrap_or("Authorization").to_ascii_lowercase();
                let declared = self.doc["security"].as_array().is_some_and(|alts| {
                    alts.iter().any(|alt| alt.get("AuthorizationHeaderToken").is_some())
                });
                if !declared {
                    problems.push(format!(
                        "{at}: the description no longer accepts AuthorizationHeaderToken"
                    ));
                }
                if !header(&name).starts_with("token ") {
                    problems.push(format!("{at}: header {name} should be `token <token>`"));
                }
            }
        }
    }

    fn check_body(
        &self,
        operation: &Operation<'_>,
        parameters: &[&Value],
        request: &Request<'_>,
        at: &str,
        problems: &mut Vec<String>,
    ) {
        // OpenAPI 3: requestBody.content["application/json"].schema; Swagger 2: an `in: body`
        // parameter, with the media type in `consumes`.
        let (schema, required) = match operation.op.get("requestBody") {
            Some(body) => {
                let body = resolve(&self.doc, body);
                (body.pointer("/content/application~1json/schema"), body["required"] == true)
            }
            None => match parameters.iter().find(|p| p["in"] == "body") {
                Some(p) => {
                    let consumes = operation.op.get("consumes").or(self.doc.get("consumes"));
                    if !consumes
                        .and_then(Value::as_array)
                        .is_some_and(|c| c.contains(&Value::from("application/json")))
                    {
                        problems
                            .push(format!("{at}: the operation does not consume application/json"));
                    }
                    (p.get("schema"), p["required"] == true)
                }
                None => (None, false),
            },
        };
        let body = request.body.filter(|b| !b.is_empty());
        match (schema, body) {
            (None, Some(_)) => {
                problems.push(format!("{at}: a body was sent to an operation that takes none"))
            }
            (Some(_), None) if required => {
                problems.push(format!("{at}: the required body is missing"))
            }
            (Some(schema), Some(bytes)) => {
                let content_type = (request.header)("content-type").unwrap_or_default();
                if !content_type.starts_with("application/json") {
                    problems
                        .push(format!("{at}: body sent as `{content_type}`, not application/json"));
                }
                match serde_json::from_slice::<Value>(bytes) {
                    Ok(value) => {
                        validate(&self.doc, schema, &value, &format!("{at}: body"), true, problems)
                    }
                    Err(e) => problems.push(format!("{at}: body is not JSON: {e}")),
                }
            }
            _ => {}
        }
    }

    /// The first 2xx the operation declares (GitHub answers a PATCH with 200, Gitea with 201).
    pub fn success_status(&self, operation: &Operation<'_>) -> u16 {
        let responses =
            operation.op["responses"].as_object().expect("operations declare responses");
        responses
            .keys()
            .filter_map(|code| code.parse::<u16>().ok())
            .find(|code| (200..300).contains(code))
            .unwrap_or_else(|| panic!("{} declares no success response", operation.id))
    }

    /// The schema of the JSON body the operation declares for `status`, if any.
    pub fn response_schema<'a>(
        &'a self,
        operation: &Operation<'a>,
        status: u16,
    ) -> Option<&'a Value> {
        let response = operation.op["responses"].get(status.to_string())?;
        let response = resolve(&self.doc, response);
        response.get("schema").or_else(|| response.pointer("/content/application~1json/schema"))
    }
}

/// A path or query value against its (scalar) schema.
fn check_text(doc: &Value, schema: &Value, text: &str, at: &str, problems: &mut Vec<String>) {
    let schema = resolve(doc, schema);
    let value = match schema.get("type").and_then(Value::as_str) {
        Some("integer") => match text.parse::<i64>() {
            Ok(n) => Value::from(n),
            Err(_) => return problems.push(format!("{at}: `{text}` is not an integer")),
        },
        Some("boolean") => match text {
            "true" | "false" => Value::from(text == "true"),
            _ => return problems.push(format!("{at}: `{text}` is not a boolean")),
        },
        _ => Value::from(text),
    };
    validate(doc, schema, &value, at, true, problems);
}
