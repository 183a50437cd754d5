#!/usr/bin/env python3
"""Writes tests/fixtures/k8s-schemas/core.json: the structural schemas (field names, types,
required fields) of the Kubernetes kinds deploy/ uses, read from the official Kubernetes Python
client's generated models (PyPI `kubernetes`, pinned below), so the manifest test can reject an
unknown or mistyped field the way `kubectl apply --validate=strict` does, without a cluster.

Run by hand when deploy/ starts using another kind or the pin moves:
    python3 -m venv .tools/k8s-client && .tools/k8s-client/bin/pip install kubernetes==37.0.2
    .tools/k8s-client/bin/python scripts/vendor-k8s-schemas.py
"""
import json
import pathlib
import re

import kubernetes
from kubernetes.client import models

PIN = "37.0.2"
# apiVersion/kind -> root model. Namespace and ServiceAccount are what deploy/ also renders.
ROOTS = {
    "v1/Namespace": "V1Namespace",
    "v1/ServiceAccount": "V1ServiceAccount",
    "v1/Service": "V1Service",
    "v1/PersistentVolumeClaim": "V1PersistentVolumeClaim",
    "apps/v1/Deployment": "V1Deployment",
    "policy/v1/PodDisruptionBudget": "V1PodDisruptionBudget",
    "networking.k8s.io/v1/NetworkPolicy": "V1NetworkPolicy",
}
SCALARS = {"str": "string", "int": "integer", "bool": "boolean", "float": "number", "datetime": "string"}


def schema_of(type_name, todo):
    if type_name in SCALARS:
        return {"type": SCALARS[type_name]}
    if type_name == "object":
        # The client types IntOrString (ports, maxUnavailable, …) as `object`.
        return {"x-kubernetes-int-or-string": True}
    match = re.fullmatch(r"List\[(.+)\]", type_name)
    if match:
        return {"type": "array", "items": schema_of(match.group(1), todo)}
    match = re.fullmatch(r"Dict\[str, (.+)\]", type_name)
    if match:
        return {"type": "object", "additionalProperties": schema_of(match.group(1), todo)}
    todo.append(type_name)
    return {"$ref": "#/definitions/" + type_name}


def main():
    assert kubernetes.__version__ == PIN, kubernetes.__version__
    definitions = {}
    todo = list(ROOTS.values())
    while todo:
        name = todo.pop()
        if name in definitions:
            continue
        model = getattr(models, name)
        properties = {}
        required = []
        for attr, type_name in model.openapi_types.items():
            key = model.attribute_map[attr]
            properties[key] = schema_of(type_name, todo)
            # Python keywords get a leading underscore in openapi_types (`_from`), not in fields.
            field = model.model_fields.get(attr) or model.model_fields.get(attr.lstrip("_"))
            if field is not None and field.is_required():
                required.append(key)
        definitions[name] = {"type": "object", "properties": properties}
        if required:
            definitions[name]["required"] = sorted(required)
    out = {
        "source": f"PyPI kubernetes=={PIN} (generated models), by scripts/vendor-k8s-schemas.py",
        "roots": ROOTS,
        "definitions": dict(sorted(definitions.items())),
    }
    path = pathlib.Path(__file__).resolve().parent.parent / "tests/fixtures/k8s-schemas/core.json"
    path.write_text(json.dumps(out, indent=1, sort_keys=False) + "\n")
    print(f"{path}: {len(definitions)} definitions")


if __name__ == "__main__":
    main()
