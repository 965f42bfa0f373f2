//! The small part of JSON Schema the forge descriptions use (OpenAPI 3.0 for GitHub, Swagger 2.0
//! for Gitea): `$ref` within the file, `type`, `properties`, `required`, `items`, `enum`,
//! `nullable` / `x-nullable`, `additionalProperties`, `allOf`, and `oneOf` / `anyOf` loosely (one
//! alternative must fit; "exactly one" is not checked). Formats are not checked.
//!
//! Also the inverse: the smallest instance of a schema with chosen fields filled in, which is
//! how the fake forge builds its answers (then validates them, so a fixture cannot drift from
//! the description).

use serde_json::{Map, Value, json};

/// Follows `$ref`s (`#/components/schemas/x`, `#/definitions/x`, `#/responses/x`) until a
/// schema without one. Panics on a dangling reference: the description itself would be broken.
pub fn resolve<'a>(doc: &'a Value, mut schema: &'a Value) -> &'a Value {
    for _ in 0..32 {
        let Some(reference) = schema.get("$ref").and_then(Value::as_str) else { return schema };
        let pointer = reference.strip_prefix('#').expect("only local $refs in the subsets");
        schema = doc.pointer(pointer).unwrap_or_else(|| panic!("dangling $ref {reference}"));
    }
    panic!("$ref cycle at {schema}");
}

/// Checks `value` against `schema`; each problem is pushed as "at: what". In `strict` mode an
/// object property the schema does not declare is a problem too (unless `additionalProperties`
/// allows it): what Errand sends must use only fields the forge documents, and fixtures may
/// not invent any.
pub fn validate(
    doc: &Value,
    schema: &Value,
    value: &Value,
    at: &str,
    strict: bool,
    errors: &mut Vec<String>,
) {
    let schema = resolve(doc, schema);
    if value.is_null() {
        if !allows_null(doc, schema) {
            errors.push(format!("{at}: null where the schema does not allow it"));
        }
        return;
    }
    if let Some(all) = schema.get("allOf").and_then(Value::as_array) {
        for part in all {
            validate(doc, part, value, at, false, errors);
        }
    }
    for key in ["oneOf", "anyOf"] {
        if let Some(alternatives) = schema.get(key).and_then(Value::as_array) {
            let fits = alternatives.iter().any(|alt| {
                let mut sub = Vec::new();
                validate(doc, alt, value, at, strict, &mut sub);
                sub.is_empty()
            });
            if !fits {
                errors.push(format!("{at}: fits none of the {key} alternatives"));
            }
        }
    }
    if let Some(allowed) = schema.get("enum").and_then(Value::as_array)
        && !allowed.contains(value)
    {
        errors.push(format!("{at}: {value} is not one of {}", Value::Array(allowed.clone())));
    }
    if let Some(kind) = schema.get("type").and_then(Value::as_str) {
        let fits = match kind {
            "string" => value.is_string(),
            "integer" => value.is_i64() || value.is_u64(),
            "number" => value.is_number(),
            "boolean" => value.is_boolean(),
            "object" => value.is_object(),
            "array" => value.is_array(),
            other => panic!("{at}: schema type `{other}` not handled by this validator"),
        };
        if !fits {
            errors.push(format!("{at}: expected {kind}, got {value}"));
            return;
        }
    }
    if let Some(object) = value.as_object() {
        validate_object(doc, schema, object, at, strict, errors);
    }
    if let (Some(items), Some(array)) = (schema.get("items"), value.as_array()) {
        for (i, item) in array.iter().enumerate() {
            validate(doc, items, item, &format!("{at}[{i}]"), strict, errors);
        }
    }
}

fn validate_object(
    doc: &Value,
    schema: &Value,
    object: &Map<String, Value>,
    at: &str,
    strict: bool,
    errors: &mut Vec<String>,
) {
    let empty = Map::new();
    let properties = schema.get("properties").and_then(Value::as_object).unwrap_or(&empty);
    for name in schema.get("required").and_then(Value::as_array).into_iter().flatten() {
        let name = name.as_str().expect("required names are strings");
        if !object.contains_key(name) {
            errors.push(format!("{at}: required property `{name}` missing"));
        }
    }
    // Composite schemas declare their properties in the parts; they are checked there.
    let composite = ["allOf", "oneOf", "anyOf"].iter().any(|k| schema.get(k).is_some());
    for (name, value) in object {
        let here = format!("{at}.{name}");
        if let Some(property) = properties.get(name) {
            validate(doc, property, value, &here, strict, errors);
            continue;
        }
        match schema.get("additionalProperties") {
            Some(Value::Bool(false)) => errors.push(format!("{here}: not allowed")),
            Some(Value::Bool(true)) => {}
            Some(extra) => validate(doc, extra, value, &here, strict, errors),
            None if strict && !composite => {
                errors.push(format!("{here}: not a property the description declares"))
            }
            None => {}
        }
    }
}

fn allows_null(doc: &Value, schema: &Value) -> bool {
    let schema = resolve(doc, schema);
    let flag = |key| schema.get(key).and_then(Value::as_bool) == Some(true);
    if flag("nullable") || flag("x-nullable") {
        return true;
    }
    if let Some(allowed) = schema.get("enum").and_then(Value::as_array) {
        return allowed.contains(&Value::Null);
    }
    let alternatives = ["oneOf", "anyOf"]
        .iter()
        .filter_map(|k| schema.get(k).and_then(Value::as_array))
        .flatten()
        .collect::<Vec<_>>();
    if !alternatives.is_empty() {
        return alternatives.iter().any(|alt| allows_null(doc, alt));
    }
    // A schema that says nothing about the value ({}) accepts anything.
    schema.get("type").is_none()
        && schema.get("properties").is_none()
        && schema.get("allOf").is_none()
}

/// The smallest instance of `schema` that carries `fill`: required properties get placeholder
/// values (`null` when nullable), properties named in `fill` get its values, recursively, so an
/// answer states only what a test cares about and is still complete.
pub fn instance(doc: &Value, schema: &Value, fill: Option<&Value>) -> Value {
    let schema = resolve(doc, schema);
    match fill {
        Some(Value::Object(_)) | None => {}
        Some(Value::Array(items)) => {
            let item_schema = schema.get("items").cloned().unwrap_or(json!({}));
            return Value::Array(
                items.iter().map(|i| instance(doc, &item_schema, Some(i))).collect(),
            );
        }
        Some(scalar) => return scalar.clone(),
    }
    if let Some(parts) = schema.get("allOf").and_then(Value::as_array) {
        let mut merged = Map::new();
        for part in parts {
            if let Value::Object(fields) = instance(doc, part, fill) {
                merged.extend(fields);
            }
        }
        return Value::Object(merged);
    }
    for key in ["oneOf", "anyOf"] {
        if let Some(alternatives) = schema.get(key).and_then(Value::as_array) {
            let pick = alternatives
                .iter()
                .find(|alt| fill.is_none() || is_object_schema(resolve(doc, alt)))
                .unwrap_or(&alternatives[0]);
            return instance(doc, pick, fill);
        }
    }
    let Some(fill) = fill else { return placeholder(doc, schema) };
    let empty = Map::new();
    let properties = schema.get("properties").and_then(Value::as_object).unwrap_or(&empty);
    let mut out = Map::new();
    for name in schema.get("required").and_then(Value::as_array).into_iter().flatten() {
        let name = name.as_str().expect("required names are strings");
        let property = properties.get(name).cloned().unwrap_or(json!({}));
        out.insert(name.to_string(), instance(doc, &property, fill.get(name)));
    }
    for (name, value) in fill.as_object().into_iter().flatten() {
        let property = properties.get(name).cloned().unwrap_or(json!({}));
        out.insert(name.clone(), instance(doc, &property, Some(value)));
    }
    Value::Object(out)
}

fn is_object_schema(schema: &Value) -> bool {
    schema.get("type").and_then(Value::as_str) == Some("object")
        || schema.get("properties").is_some()
}

fn placeholder(doc: &Value, schema: &Value) -> Value {
    let flag = |key| schema.get(key).and_then(Value::as_bool) == Some(true);
    if flag("nullable") || flag("x-nullable") {
        return Value::Null;
    }
    if let Some(first) =
        schema.get("enum").and_then(Value::as_array).and_then(|e| e.iter().find(|v| !v.is_null()))
    {
        return first.clone();
    }
    match schema.get("type").and_then(Value::as_str) {
        Some("string") => match schema.get("format").and_then(Value::as_str) {
            Some("date-time") => json!("2026-09-01T12:00:00Z"),
            Some("uri") | Some("url") => json!("https://forge.invalid/placeholder"),
            Some("email") => json!("errand@forge.invalid"),
            _ => json!("placeholder"),
        },
        Some("integer") => json!(1),
        Some("number") => json!(1.5),
        Some("boolean") => json!(false),
        Some("array") => json!([]),
        Some("object") => instance(doc, schema, Some(&json!({}))),
        _ if schema.get("properties").is_some() => instance(doc, schema, Some(&json!({}))),
        _ => Value::Null,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_validator_catches_what_it_claims_to() {
        let doc = json!({"definitions": {
            "Pet": {"type": "object", "required": ["name"], "properties": {
                "name": {"type": "string"},
                "age": {"type": "integer", "x-nullable": true},
                "kind": {"type": "string", "enum": ["cat", "dog"]},
                "tags": {"type": "array", "items": {"type": "string"}},
                "id": {"oneOf": [{"type": "string"}, {"type": "integer"}]}
            }}
        }});
        let schema = json!({"$ref": "#/definitions/Pet"});
        let cases: &[(Value, usize)] = &[
            (json!({"name": "a"}), 0),
            (json!({"name": "a", "age": null, "kind": "cat", "tags": ["x"], "id": 3}), 0),
            (json!({}), 1),
            (json!({"name": 1}), 1),
            (json!({"name": "a", "kind": "cow"}), 1),
            (json!({"name": "a", "tags": [1]}), 1),
            (json!({"name": "a", "id": true}), 1),
            (json!({"name": "a", "extra": 1}), 1),
            (json!(null), 1),
        ];
        for (value, want) in cases {
            let mut errors = Vec::new();
            validate(&doc, &schema, value, "$", true, &mut errors);
            assert_eq!(errors.len(), *want, "{value}: {errors:?}");
        }
        let made = instance(&doc, &schema, Some(&json!({"kind": "dog"})));
        assert_eq!(made, json!({"name": "placeholder", "kind": "dog"}));
    }
}
