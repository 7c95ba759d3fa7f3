#!/usr/bin/env bash
# vendor/hyper is hyper exactly as published on crates.io plus vendor/hyper.patch, nothing else:
# download the published crate, check it against the checksum crates.io gave for it, apply the
# patch, and compare the result with the copy the build uses.
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)

version=1.12.0
# The checksum in crates.io's index for hyper 1.12.0 (and in Cargo.lock before the patch).
sha256=2c3e324da4c95177d6291d4c8730197c0d1822f8a9766814a4a44fa5ab797c9c

grep -qx "version = \"$version\"" "$root/vendor/hyper/Cargo.toml" || {
  echo "vendor/hyper is not hyper $version: update this check with the new version's checksum" >&2
  exit 1
}

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
curl -sSfL --retry 3 -o "$work/hyper.crate" "https://static.crates.io/crates/hyper/hyper-$version.crate"
echo "$sha256  $work/hyper.crate" | sha256sum --check --quiet
tar -xzf "$work/hyper.crate" -C "$work"
(cd "$work/hyper-$version" && git apply -p1 "$root/vendor/hyper.patch")
if ! diff -r "$work/hyper-$version" "$root/vendor/hyper"; then
  echo "vendor/hyper differs from hyper $version with vendor/hyper.patch applied:" >&2
  echo "change the copy only through the patch (see vendor/README.md)" >&2
  exit 1
fi
echo "vendor/hyper is hyper $version with vendor/hyper.patch"
