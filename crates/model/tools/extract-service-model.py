#!/usr/bin/env python3
"""Regenerate crates/model/src/appmesh-2019-01-25.json from the installed botocore.

The output is the AWS App Mesh 2019-01-25 service model (botocore's
`data/appmesh/2019-01-25/service-2.json.gz`) with every `documentation` key
removed, written as compact JSON with sorted keys so that regenerating it gives
a stable diff. The build never runs this script: the JSON file is committed and
embedded with `include_str!`.

License: the service model is part of botocore (https://github.com/boto/botocore),
Copyright Amazon.com, Inc. or its affiliates, licensed under the Apache License,
Version 2.0. aviary is Apache-2.0 as well; keep this notice with the extracted file.

Usage: python3 crates/model/tools/extract-service-model.py
"""

import gzip
import json
import os
import sys

import botocore

HERE = os.path.dirname(os.path.abspath(__file__))
OUT = os.path.join(HERE, "..", "src", "appmesh-2019-01-25.json")
KEEP = ("version", "metadata", "operations", "shapes")


def strip_documentation(node):
    if isinstance(node, dict):
        return {k: strip_documentation(v) for k, v in node.items() if k != "documentation"}
    if isinstance(node, list):
        return [strip_documentation(v) for v in node]
    return node


def main():
    src = os.path.join(
        os.path.dirname(botocore.__file__), "data", "appmesh", "2019-01-25", "service-2.json.gz"
    )
    with gzip.open(src, "rt", encoding="utf-8") as f:
        model = json.load(f)
    model = {k: strip_documentation(model[k]) for k in KEEP if k in model}
    text = json.dumps(model, separators=(",", ":"), sort_keys=True, ensure_ascii=False)
    with open(OUT, "w", encoding="utf-8") as f:
        f.write(text)
        f.write("\n")
    print(
        f"wrote {os.path.relpath(OUT)} ({len(text)} bytes) from botocore {botocore.__version__}",
        file=sys.stderr,
    )


if __name__ == "__main__":
    main()
