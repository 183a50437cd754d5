//! A small kustomize renderer for exactly the features deploy/ uses, so the manifest test runs
//! where no `kubectl kustomize` exists (CI has only Rust, Python and Debian's base): `resources`
//! (files, and directories holding a kustomization), `namespace`, `images` (`newName`,
//! `newTag`, `digest`), `patches` (a patch file naming its target by apiVersion/kind/name,
//! merged like kustomize merges a patch into a custom resource: maps merge, lists and scalars
//! are replaced, null deletes) and `replacements` (copy one field, scalar or not, to others).
//! Anything else in a kustomization is an error, never silently ignored, and files outside a
//! kustomization's own folder are refused as kustomize's default load restrictor does.

use anyhow::{Context, Result, bail, ensure};
use serde_json::Value;
use std::path::{Path, PathBuf};

/// Kinds that are not namespaced (the `namespace:` transformer leaves them alone).
const CLUSTER_SCOPED: &[&str] = &["Namespace", "CustomResourceDefinition", "ClusterRole"];

/// Renders the kustomization in `dir` to its objects.
pub fn render(dir: &Path) -> Result<Vec<Value>> {
    let dir = dir
        .canonicalize()
        .with_context(|| format!("kustomization folder {}", dir.display()))?;
    let path = dir.join("kustomization.yaml");
    let text =
        std::fs::read_to_string(&path).with_context(|| format!("read {}", path.display()))?;
    let kustomization: Value = yaml_to_json(&text).with_context(|| path.display().to_string())?;
    let Value::Object(fields) = &kustomization else {
        bail!("{}: not a map", path.display());
    };
    for key in fields.keys() {
        ensure!(
            [
                "apiVersion",
                "kind",
                "resources",
                "namespace",
                "images",
                "patches",
                "replacements"
            ]
            .contains(&key.as_str()),
            "{}: `{key}` is a kustomize feature this renderer does not implement",
            path.display()
        );
    }
    ensure!(
        fields.get("kind").and_then(Value::as_str) == Some("Kustomization"),
        "{}: kind must be Kustomization",
        path.display()
    );

    let mut objects = Vec::new();
    for resource in strings(fields.get("resources"), "resources")? {
        let target = dir.join(&resource);
        if target.is_dir() {
            objects.extend(render(&target)?);
        } else {
            let file = within(&dir, &resource)?;
            let text = std::fs::read_to_string(&file)
                .with_context(|| format!("read {}", file.display()))?;
            objects.extend(documents(&text).with_context(|| file.display().to_string())?);
        }
    }
    if let Some(patches) = fields.get("patches") {
        for patch in patches.as_array().context("patches must be a list")? {
            let Value::Object(entry) = patch else {
                bail!("a patch must be a map");
            };
            ensure!(
                entry.keys().all(|key| key == "path"),
                "only `patches: - path: FILE` is implemented, not {entry:?}"
            );
            let file = within(&dir, entry["path"].as_str().context("patch path")?)?;
            let text = std::fs::read_to_string(&file)?;
            for patch in documents(&text)? {
                apply_patch(&mut objects, &patch)
                    .with_context(|| format!("patch {}", file.display()))?;
            }
        }
    }
    if let Some(namespace) = fields.get("namespace") {
        let namespace = namespace.as_str().context("namespace must be a string")?;
        for object in &mut objects {
            if !CLUSTER_SCOPED.contains(&kind(object)) {
                object["metadata"]["namespace"] = Value::String(namespace.to_owned());
            }
        }
    }
    if let Some(images) = fields.get("images") {
        for image in images.as_array().context("images must be a list")? {
            set_images(&mut objects, image)?;
        }
    }
    if let Some(replacements) = fields.get("replacements") {
        for replacement in replacements
            .as_array()
            .context("replacements must be a list")?
        {
            replace(&mut objects, replacement)?;
        }
    }
    Ok(objects)
}

/// The YAML documents of a file, as JSON values (empty documents skipped).
pub fn documents(text: &str) -> Result<Vec<Value>> {
    let mut out = Vec::new();
    for document in serde_yaml::Deserializer::from_str(text) {
        let value: serde_yaml::Value = serde::Deserialize::deserialize(document)?;
        if !value.is_null() {
            out.push(serde_json::to_value(value)?);
        }
    }
    Ok(out)
}

fn yaml_to_json(text: &str) -> Result<Value> {
    let value: serde_yaml::Value = serde_yaml::from_str(text)?;
    Ok(serde_json::to_value(value)?)
}

/// `relative` inside `dir`, or an error (kustomize's LoadRestrictionsRootOnly).
fn within(dir: &Path, relative: &str) -> Result<PathBuf> {
    let path = dir
        .join(relative)
        .canonicalize()
        .with_context(|| format!("{} in {}", relative, dir.display()))?;
    ensure!(
        path.starts_with(dir),
        "{relative}: kustomize refuses files outside the kustomization's folder {}",
        dir.display()
    );
    Ok(path)
}

fn strings(value: Option<&Value>, what: &str) -> Result<Vec<String>> {
    match value {
        None => Ok(Vec::new()),
        Some(Value::Array(items)) => items
            .iter()
            .map(|item| {
                item.as_str()
                    .map(str::to_owned)
                    .with_context(|| format!("{what}: {item} is not a string"))
            })
            .collect(),
        Some(other) => bail!("{what} must be a list, not {other}"),
    }
}

/// The object's kind ("" when it has none).
pub fn kind(object: &Value) -> &str {
    object["kind"].as_str().unwrap_or_default()
}

/// The object's metadata.name ("" when it has none).
pub fn name(object: &Value) -> &str {
    object["metadata"]["name"].as_str().unwrap_or_default()
}

fn apply_patch(objects: &mut [Value], patch: &Value) -> Result<()> {
    let matches: Vec<&mut Value> = objects
        .iter_mut()
        .filter(|object| {
            object["apiVersion"] == patch["apiVersion"]
                && kind(object) == kind(patch)
                && name(object) == name(patch)
        })
        .collect();
    ensure!(
        matches.len() == 1,
        "the patch for {} {} matches {} objects",
        kind(patch),
        name(patch),
        matches.len()
    );
    for object in matches {
        merge(object, patch);
    }
    Ok(())
}

/// JSON merge patch (RFC 7386).
fn merge(target: &mut Value, patch: &Value) {
    match (target, patch) {
        (Value::Object(target), Value::Object(patch)) => {
            for (key, value) in patch {
                if value.is_null() {
                    target.remove(key);
                } else {
                    merge(target.entry(key.clone()).or_insert(Value::Null), value);
                }
            }
        }
        (target, patch) => *target = patch.clone(),
    }
}

fn set_images(objects: &mut [Value], image: &Value) -> Result<()> {
    let wanted = image["name"].as_str().context("images: name")?;
    for key in image.as_object().context("an image must be a map")?.keys() {
        ensure!(
            ["name", "newName", "newTag", "digest"].contains(&key.as_str()),
            "images: `{key}` is not implemented"
        );
    }
    for object in objects.iter_mut() {
        for list in ["containers", "initContainers"] {
            // pointer_mut, not IndexMut: indexing would insert the missing path into the object.
            let Some(containers) = object
                .pointer_mut(&format!("/spec/template/spec/{list}"))
                .and_then(Value::as_array_mut)
            else {
                continue;
            };
            for container in containers {
                let Some(current) = container["image"].as_str() else {
                    continue;
                };
                // name[:tag][@digest]
                let (without_digest, _) = current.split_once('@').unwrap_or((current, ""));
                let (base, tag) = match without_digest.rsplit_once(':') {
                    Some((base, tag)) if !tag.contains('/') => (base, Some(tag)),
                    _ => (without_digest, None),
                };
                if base != wanted {
                    continue;
                }
                let new_base = image["newName"].as_str().unwrap_or(base);
                let rendered = match (image["digest"].as_str(), image["newTag"].as_str(), tag) {
                    (Some(digest), _, _) => format!("{new_base}@{digest}"),
                    (None, Some(tag), _) | (None, None, Some(tag)) => format!("{new_base}:{tag}"),
                    (None, None, None) => new_base.to_owned(),
                };
                container["image"] = Value::String(rendered);
            }
        }
    }
    Ok(())
}

fn select<'a>(objects: &'a mut [Value], selector: &Value) -> Vec<&'a mut Value> {
    objects
        .iter_mut()
        .filter(|object| {
            selector["kind"]
                .as_str()
                .is_none_or(|wanted| kind(object) == wanted)
                && selector["name"]
                    .as_str()
                    .is_none_or(|wanted| name(object) == wanted)
        })
        .collect()
}

fn field_path<'a>(mut value: &'a mut Value, path: &str) -> Result<&'a mut Value> {
    for step in path.split('.') {
        value = match value {
            Value::Array(items) => {
                let index: usize = step
                    .parse()
                    .with_context(|| format!("{path}: `{step}` is not a list index"))?;
                items
                    .get_mut(index)
                    .with_context(|| format!("{path}: no item {index}"))?
            }
            Value::Object(map) => map
                .get_mut(step)
                .with_context(|| format!("{path}: no field `{step}`"))?,
            _ => bail!("{path}: `{step}` goes into a scalar"),
        };
    }
    Ok(value)
}

fn replace(objects: &mut [Value], replacement: &Value) -> Result<()> {
    let source = &replacement["source"];
    let mut sources = select(objects, source);
    ensure!(
        sources.len() == 1,
        "replacement source {source} matches {} objects",
        sources.len()
    );
    let path = source["fieldPath"].as_str().context("source.fieldPath")?;
    let value = field_path(sources.remove(0), path)?.clone();
    for target in replacement["targets"]
        .as_array()
        .context("replacement targets")?
    {
        let selected = select(objects, &target["select"]);
        ensure!(
            !selected.is_empty(),
            "replacement target {target} matches nothing"
        );
        for object in selected {
            for path in strings(target.get("fieldPaths"), "fieldPaths")? {
                *field_path(object, &path)? = value.clone();
            }
        }
    }
    Ok(())
}
