#!/usr/bin/env python3
"""Validates Kubernetes objects offline, strictly (unknown fields are errors).

usage: validate.py [--kubernetes-version 1.32.0] FILE...   (FILE may be - for stdin)

Core kinds are checked with the kubernetes-validate package against the schemas of
the given Kubernetes version. ServiceMonitor, PodMonitor and PrometheusRule are
checked against the openAPIV3Schema of the prometheus-operator CRDs in
schemas/prometheus-operator/ beside this file, made strict the way the API server's
field validation is: a field that the schema does not declare is an error.

Prints one line per object, `ok Kind/name` or `FAIL Kind/name: reason`, and exits
1 when any object fails, 2 when a module is missing.
"""

import argparse
import copy
import os
import sys

try:
    import jsonschema
    import kubernetes_validate
    import yaml
except ImportError as missing:
    print(f"error: {missing}", file=sys.stderr)
    print("hint: pip install -r deploy/tests/requirements.txt", file=sys.stderr)
    sys.exit(2)

HERE = os.path.dirname(os.path.abspath(__file__))
CRD_DIR = os.path.join(HERE, "schemas", "prometheus-operator")
CRD_GROUP = "monitoring.coreos.com"


def strict(schema):
    """A copy of an OpenAPI schema in which undeclared properties are errors."""
    schema = copy.deepcopy(schema)

    def walk(node):
        if isinstance(node, dict):
            if (
                "properties" in node
                and "additionalProperties" not in node
                and not node.get("x-kubernetes-preserve-unknown-fields")
            ):
                node["additionalProperties"] = False
            for value in node.values():
                walk(value)
        elif isinstance(node, list):
            for value in node:
                walk(value)

    walk(schema)
    return schema


def crd_schemas():
    """(kind, version) -> strict schema, from every CRD file in CRD_DIR."""
    schemas = {}
    for name in sorted(os.listdir(CRD_DIR)):
        if not name.endswith(".yaml"):
            continue
        with open(os.path.join(CRD_DIR, name), encoding="utf-8") as f:
            for crd in yaml.safe_load_all(f):
                if not crd or crd.get("kind") != "CustomResourceDefinition":
                    continue
                kind = crd["spec"]["names"]["kind"]
                for version in crd["spec"]["versions"]:
                    schema = strict(version["schema"]["openAPIV3Schema"])
                    # The API server checks metadata itself; the CRD only says
                    # `type: object`.
                    schema.setdefault("properties", {})["metadata"] = {"type": "object"}
                    schemas[(kind, version["name"])] = schema
    return schemas


def describe(obj):
    kind = obj.get("kind", "?") if isinstance(obj, dict) else "?"
    name = (obj.get("metadata") or {}).get("name", "?") if isinstance(obj, dict) else "?"
    return f"{kind}/{name}"


def validate(obj, kubernetes_version, crds):
    """None when valid, else the reason."""
    if not isinstance(obj, dict) or "apiVersion" not in obj or "kind" not in obj:
        return "not a Kubernetes object (apiVersion and kind are required)"
    group, _, version = obj["apiVersion"].rpartition("/")
    if group == CRD_GROUP:
        schema = crds.get((obj["kind"], version))
        if schema is None:
            return f"no CRD schema for {obj['kind']} {obj['apiVersion']} in {CRD_DIR}"
        validator = jsonschema.Draft7Validator(schema)
        errors = sorted(validator.iter_errors(obj), key=lambda e: list(e.absolute_path))
        if errors:
            return "; ".join(
                f"{'.'.join(str(p) for p in e.absolute_path) or '<root>'}: {e.message}"
                for e in errors[:5]
            )
        return None
    try:
        kubernetes_validate.validate(obj, kubernetes_version, strict=True)
    except kubernetes_validate.ValidationError as e:
        path = ".".join(str(p) for p in e.path) or "<root>"
        return f"{path}: {e.message}"
    except kubernetes_validate.SchemaNotFoundError as e:
        return f"no schema: {e}"
    return None


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--kubernetes-version", default="1.32.0")
    parser.add_argument("files", nargs="+")
    args = parser.parse_args()
    crds = crd_schemas()
    failures = 0
    count = 0
    for path in args.files:
        stream = sys.stdin if path == "-" else open(path, encoding="utf-8")
        with stream:
            for obj in yaml.safe_load_all(stream):
                if obj is None:
                    continue
                count += 1
                reason = validate(obj, args.kubernetes_version, crds)
                if reason is None:
                    print(f"ok {describe(obj)}")
                else:
                    failures += 1
                    print(f"FAIL {describe(obj)}: {reason}")
    if count == 0:
        print("FAIL no object to validate")
        return 1
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
