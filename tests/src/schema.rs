//! Validates Kubernetes objects against structural schemas the way the API server and
//! `kubectl apply --validate=strict` judge them: Istio's own CRD schemas (copied verbatim into
//! tests/fixtures/istio-crds/) and Kubernetes' core kinds (tests/fixtures/k8s-schemas/core.json,
//! generated from the official client's models by scripts/vendor-k8s-schemas.py).
//!
//! Written here rather than taken from a JSON-Schema crate on purpose: Kubernetes' semantics
//! differ from JSON Schema's where it matters most for a manifest. An unknown field is an error
//! (JSON Schema allows it unless `additionalProperties: false`, which structural schemas never
//! say), `x-kubernetes-preserve-unknown-fields` and `x-kubernetes-int-or-string` have meanings of
//! their own, and the CEL rules (`x-kubernetes-validations`) are no JSON Schema at all. Every CEL
//! rule met is checked by its Rust twin in [`cel`]; a rule without one, or a schema keyword not
//! implemented, is an error rather than a silent pass.

use anyhow::{Context, Result, bail};
use serde_json::{Map, Value};
use std::collections::HashMap;
use std::path::Path;

/// Schema keywords that do not constrain a value (or that this checker reads elsewhere).
const INERT: &[&str] = &[
    "description",
    "format",
    "x-kubernetes-list-type",
    "x-kubernetes-list-map-keys",
    "x-kubernetes-map-type",
    "default",
    "title",
];

/// Every schema, by `apiVersion/kind`.
#[derive(Debug)]
pub struct Schemas {
    roots: HashMap<String, Value>,
    definitions: Map<String, Value>,
}

impl Schemas {
    /// Loads the vendored schemas under `fixtures` (tests/fixtures).
    pub fn load(fixtures: &Path) -> Result<Self> {
        let mut roots = HashMap::new();
        let core_path = fixtures.join("k8s-schemas/core.json");
        let core: Value = serde_json::from_str(
            &std::fs::read_to_string(&core_path)
                .with_context(|| format!("read {}", core_path.display()))?,
        )?;
        let definitions = core["definitions"]
            .as_object()
            .context("core.json: definitions")?
            .clone();
        for (api_kind, model) in core["roots"].as_object().context("core.json: roots")? {
            let model = model.as_str().context("a root names a definition")?;
            roots.insert(
                api_kind.clone(),
                serde_json::json!({"$ref": format!("#/definitions/{model}")}),
            );
        }
        let crds = fixtures.join("istio-crds");
        let mut files: Vec<_> = std::fs::read_dir(&crds)
            .with_context(|| format!("read {}", crds.display()))?
            .collect::<std::io::Result<_>>()?;
        files.sort_by_key(|entry| entry.path());
        for entry in files {
            let text = std::fs::read_to_string(entry.path())?;
            for crd in crate::kustomize::documents(&text)? {
                let group = crd["spec"]["group"].as_str().context("crd group")?;
                let kind = crd["spec"]["names"]["kind"].as_str().context("crd kind")?;
                for version in crd["spec"]["versions"].as_array().context("versions")? {
                    if version["served"] != Value::Bool(true) {
                        continue;
                    }
                    let name = version["name"].as_str().context("version name")?;
                    let mut schema = version["schema"]["openAPIV3Schema"].clone();
                    // apiVersion, kind and metadata are implicit in a CRD's schema.
                    let properties = schema["properties"]
                        .as_object_mut()
                        .context("a CRD schema has properties")?;
                    properties.insert("apiVersion".into(), serde_json::json!({"type": "string"}));
                    properties.insert("kind".into(), serde_json::json!({"type": "string"}));
                    properties.insert(
                        "metadata".into(),
                        serde_json::json!({"$ref": "#/definitions/V1ObjectMeta"}),
                    );
                    roots.insert(format!("{group}/{name}/{kind}"), schema);
                }
            }
        }
        Ok(Self { roots, definitions })
    }

    /// Every way `object` breaks its kind's schema (empty: valid). An object of a kind with no
    /// schema here is one error.
    pub fn validate(&self, object: &Value) -> Vec<String> {
        let api_kind = format!(
            "{}/{}",
            object["apiVersion"].as_str().unwrap_or_default(),
            object["kind"].as_str().unwrap_or_default()
        );
        let Some(schema) = self.roots.get(&api_kind) else {
            return vec![format!("no schema for {api_kind}")];
        };
        let mut errors = Vec::new();
        self.check(object, schema, "", true, &mut errors);
        let kind = object["kind"].as_str().unwrap_or_default();
        let name = object["metadata"]["name"].as_str().unwrap_or_default();
        if name.is_empty() {
            errors.push("metadata.name is required".to_owned());
        }
        errors
            .into_iter()
            .map(|error| format!("{kind} {name}: {error}"))
            .collect()
    }

    fn resolve<'a>(&'a self, schema: &'a Value) -> &'a Value {
        match schema["$ref"].as_str() {
            Some(reference) => reference
                .strip_prefix("#/definitions/")
                .and_then(|name| self.definitions.get(name))
                .unwrap_or(&Value::Null),
            None => schema,
        }
    }

    /// `strict`: unknown fields are errors (off inside anyOf/oneOf/not, whose branches only
    /// constrain, never declare fields: a structural-schema rule).
    fn check(
        &self,
        value: &Value,
        schema: &Value,
        at: &str,
        strict: bool,
        errors: &mut Vec<String>,
    ) {
        let schema = self.resolve(schema);
        let Some(keywords) = schema.as_object() else {
            errors.push(format!("{at}: unresolvable schema"));
            return;
        };
        if value.is_null() && schema["nullable"] == Value::Bool(true) {
            return;
        }
        let here = if at.is_empty() { "." } else { at };
        for (keyword, argument) in keywords {
            match keyword.as_str() {
                "$ref" | "nullable" | "properties" | "additionalProperties" => {}
                "x-kubernetes-preserve-unknown-fields" | "x-kubernetes-embedded-resource" => {}
                keyword if INERT.contains(&keyword) => {}
                "type" => {
                    let ok = match argument.as_str().unwrap_or_default() {
                        "object" => value.is_object(),
                        "array" => value.is_array(),
                        "string" => value.is_string(),
                        "integer" => value.is_i64() || value.is_u64(),
                        "number" => value.is_number(),
                        "boolean" => value.is_boolean(),
                        _ => false,
                    };
                    if !ok {
                        errors.push(format!("{here}: {value} is not of type {argument}"));
                        return;
                    }
                }
                "x-kubernetes-int-or-string" => {
                    if !(value.is_i64() || value.is_u64() || value.is_string()) {
                        errors.push(format!(
                            "{here}: {value} is neither an integer nor a string"
                        ));
                    }
                }
                "enum" => {
                    if !argument
                        .as_array()
                        .is_some_and(|items| items.contains(value))
                    {
                        errors.push(format!("{here}: {value} is not one of {argument}"));
                    }
                }
                "required" => {
                    for field in argument.as_array().into_iter().flatten() {
                        let field = field.as_str().unwrap_or_default();
                        if value.get(field).is_none() {
                            errors.push(format!("{here}: missing required field `{field}`"));
                        }
                    }
                }
                "pattern" => {
                    if let (Some(text), Some(pattern)) = (value.as_str(), argument.as_str()) {
                        match regex::Regex::new(pattern) {
                            Ok(regex) if regex.is_match(text) => {}
                            Ok(_) => {
                                errors.push(format!("{here}: {text:?} does not match {pattern}"))
                            }
                            Err(error) => {
                                errors.push(format!("{here}: pattern {pattern}: {error}"))
                            }
                        }
                    }
                }
                "minLength" | "maxLength" => {
                    if let (Some(text), Some(bound)) = (value.as_str(), argument.as_u64()) {
                        let length = text.chars().count() as u64;
                        if (keyword == "minLength" && length < bound)
                            || (keyword == "maxLength" && length > bound)
                        {
                            errors
                                .push(format!("{here}: length {length} breaks {keyword} {bound}"));
                        }
                    }
                }
                "minItems" | "maxItems" | "minProperties" | "maxProperties" => {
                    let count = match value {
                        Value::Array(items) => items.len(),
                        Value::Object(map) => map.len(),
                        _ => continue,
                    } as u64;
                    let bound = argument.as_u64().unwrap_or_default();
                    if (keyword.starts_with("min") && count < bound)
                        || (keyword.starts_with("max") && count > bound)
                    {
                        errors.push(format!("{here}: {count} items breaks {keyword} {bound}"));
                    }
                }
                "minimum" | "maximum" => {
                    if let (Some(number), Some(bound)) = (value.as_f64(), argument.as_f64())
                        && ((keyword == "minimum" && number < bound)
                            || (keyword == "maximum" && number > bound))
                    {
                        errors.push(format!("{here}: {number} breaks {keyword} {bound}"));
                    }
                }
                "items" => {
                    for (index, item) in value.as_array().into_iter().flatten().enumerate() {
                        self.check(item, argument, &format!("{at}[{index}]"), strict, errors);
                    }
                }
                "anyOf" | "oneOf" => {
                    let passing = argument
                        .as_array()
                        .into_iter()
                        .flatten()
                        .filter(|branch| {
                            let mut branch_errors = Vec::new();
                            self.check(value, branch, at, false, &mut branch_errors);
                            branch_errors.is_empty()
                        })
                        .count();
                    let ok = if keyword == "anyOf" {
                        passing >= 1
                    } else {
                        passing == 1
                    };
                    if !ok {
                        errors.push(format!("{here}: {passing} branches of {keyword} match"));
                    }
                }
                "not" => {
                    let mut branch_errors = Vec::new();
                    self.check(value, argument, at, false, &mut branch_errors);
                    if branch_errors.is_empty() {
                        errors.push(format!("{here}: matches a `not` schema"));
                    }
                }
                "x-kubernetes-validations" => {
                    for rule in argument.as_array().into_iter().flatten() {
                        let text = rule["rule"].as_str().unwrap_or_default();
                        match cel::check(text, value) {
                            Ok(true) => {}
                            Ok(false) => errors.push(format!(
                                "{here}: {}",
                                rule["message"].as_str().unwrap_or(text)
                            )),
                            Err(error) => errors.push(format!("{here}: {error}")),
                        }
                    }
                }
                other => errors.push(format!(
                    "{here}: the schema uses `{other}`, which this validator does not implement"
                )),
            }
        }
        if let Value::Object(fields) = value {
            let properties = schema["properties"].as_object();
            let additional = &schema["additionalProperties"];
            let preserve = schema["x-kubernetes-preserve-unknown-fields"] == Value::Bool(true);
            for (key, field) in fields {
                let path = format!("{at}.{key}");
                if let Some(field_schema) = properties.and_then(|properties| properties.get(key)) {
                    self.check(field, field_schema, &path, strict, errors);
                } else if additional.is_object() {
                    self.check(field, additional, &path, strict, errors);
                } else if strict && !preserve && additional != &Value::Bool(true) {
                    errors.push(format!("{path}: unknown field"));
                }
            }
        }
    }
}

/// The CEL rules of the vendored CRDs, each as Rust. A rule that is not here is an error.
pub mod cel {
    use anyhow::{Result, bail};
    use serde_json::Value;

    fn normalised(rule: &str) -> String {
        rule.split_whitespace().collect::<Vec<_>>().join(" ")
    }

    fn has(value: &Value, field: &str) -> bool {
        value.get(field).is_some()
    }

    /// Whether `value` satisfies `rule`.
    pub fn check(rule: &str, value: &Value) -> Result<bool> {
        let keys = || value.as_object().into_iter().flat_map(|map| map.keys());
        Ok(match normalised(rule).as_str() {
            "(has(self.selector) ? 1 : 0) + (has(self.targetRef) ? 1 : 0) + (has(self.targetRefs) ? 1 : 0) <= 1" => {
                ["selector", "targetRef", "targetRefs"]
                    .iter()
                    .filter(|field| has(value, field))
                    .count()
                    <= 1
            }
            "(has(self.serviceAccounts) || has(self.notServiceAccounts)) ? (!has(self.principals) && !has(self.notPrincipals) && !has(self.namespaces) && !has(self.notNamespaces)) : true" => {
                !(has(value, "serviceAccounts") || has(value, "notServiceAccounts"))
                    || ["principals", "notPrincipals", "namespaces", "notNamespaces"]
                        .iter()
                        .all(|field| !has(value, field))
            }
            r#"self.all(key, !key.contains("*"))"# => keys().all(|key| !key.contains('*')),
            "self.all(key, key.size() != 0)" => keys().all(|key| !key.is_empty()),
            r#"!self.contains("*")"# => !value.as_str().unwrap_or_default().contains('*'),
            "self.size() == 0" => value.as_str().is_some_and(str::is_empty),
            "has(self.portLevelMtls) ? (((has(self.selector) && has(self.selector.matchLabels)) ? self.selector.matchLabels : {}).size() > 0) : true" => {
                !has(value, "portLevelMtls")
                    || value["selector"]["matchLabels"]
                        .as_object()
                        .is_some_and(|labels| !labels.is_empty())
            }
            "self.all(key, 0 < int(key) && int(key) <= 65535)" => keys().all(|key| {
                key.parse::<i64>()
                    .is_ok_and(|port| 0 < port && port <= 65535)
            }),
            r#"isURL(self) ? (url(self).getScheme() in ["", "http", "https", "oci", "file"]) : (isURL("http://" + self) && url("http://" + self).getScheme() in ["", "http", "https", "oci", "file"])"# =>
            {
                let url = value.as_str().unwrap_or_default();
                match url.split_once("://") {
                    Some((scheme, rest)) => {
                        ["http", "https", "oci", "file"].contains(&scheme) && !rest.is_empty()
                    }
                    // No scheme: CEL retries it as http://…
                    None => !url.is_empty() && !url.contains(char::is_whitespace),
                }
            }
            r#"(has(self.valueFrom) ? self.valueFrom : "") != "HOST" || !has(self.value)"# => {
                value["valueFrom"] != "HOST" || !has(value, "value")
            }
            other => bail!("a CEL rule this validator does not implement: {other}"),
        })
    }
}

/// Errors as one message, or Ok when there are none.
pub fn ensure_valid(errors: Vec<String>) -> Result<()> {
    if errors.is_empty() {
        Ok(())
    } else {
        bail!("{}", errors.join("\n"))
    }
}
