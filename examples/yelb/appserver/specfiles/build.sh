#!/bin/sh
# The build of yelb-appserver, as the canary pipeline runs it: the checkout as working
# directory and ARTIFACT_DIR (an absolute, empty directory kept for this run) in the
# environment. Its output is the build log.
#
# 1. byte-compiles app.py (a syntax error fails the build);
# 2. copies app.py into $ARTIFACT_DIR: the artifact;
# 3. rewrites specfiles/deploy.json as the reference pipeline's build does, adding
#    container_image (the command line a Workload runs: python3 $ARTIFACT_DIR/app.py) and
#    config_file (specfiles/template.yaml, base64).
#
# Files are found next to this script (specfiles/ beside app.py), whatever the checkout's root.
set -eu

fail() {
    echo "build: FAILED: $*" >&2
    exit 1
}

[ -n "${ARTIFACT_DIR:-}" ] || fail "ARTIFACT_DIR is not set"
case $ARTIFACT_DIR in
/*) ;;
*) fail "ARTIFACT_DIR must be an absolute path, not '$ARTIFACT_DIR'" ;;
esac
[ -d "$ARTIFACT_DIR" ] || fail "ARTIFACT_DIR $ARTIFACT_DIR is not a directory"

SPECFILES=$(cd "$(dirname "$0")" && pwd)
APP_DIR=$(dirname "$SPECFILES")
APP=$APP_DIR/app.py
DEPLOY=$SPECFILES/deploy.json
TEMPLATE=$SPECFILES/template.yaml
PYTHON=$(command -v python3) || fail "python3 is not on PATH"
for file in "$APP" "$DEPLOY" "$TEMPLATE"; do
    [ -f "$file" ] || fail "$file is missing"
done

echo "build: $($PYTHON --version 2>&1) at $PYTHON"
echo "build: byte-compiling $APP"
# Compiled into a scratch file (py_compile's default, __pycache__ in the checkout, is not wanted).
PYC=$ARTIFACT_DIR/.app.pyc
"$PYTHON" - "$APP" "$PYC" <<'PY' || fail "$APP does not compile (see the error above)"
import py_compile, sys

try:
    py_compile.compile(sys.argv[1], cfile=sys.argv[2], doraise=True)
except py_compile.PyCompileError as e:
    sys.exit(e.msg)
PY
rm -f "$PYC"

echo "build: copying app.py to $ARTIFACT_DIR/app.py"
cp "$APP" "$ARTIFACT_DIR/app.py"

echo "build: adding container_image and config_file to $DEPLOY"
"$PYTHON" - "$DEPLOY" "$TEMPLATE" "$ARTIFACT_DIR/app.py" <<'PY'
import base64, json, os, sys

deploy_path, template_path, artifact = sys.argv[1:]
with open(deploy_path) as f:
    deploy = json.load(f)
with open(template_path, "rb") as f:
    template = f.read()
deploy["container_image"] = ["python3", artifact]
deploy["config_file"] = base64.b64encode(template).decode()
tmp = deploy_path + ".tmp"
with open(tmp, "w") as f:
    json.dump(deploy, f, indent=2)
    f.write("\n")
os.replace(tmp, deploy_path)
print("build:   container_image = %s" % json.dumps(deploy["container_image"]))
print("build:   config_file = base64 of %s (%d bytes)" % (os.path.basename(template_path), len(template)))
PY
echo "build: done"
