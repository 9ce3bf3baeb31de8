#!/usr/bin/env bash
# Refreshes the Swagger UI files that /docs serves (api/swaggerui/dist) from
# the npm package swagger-ui-dist, pinned here. They are committed, so that a
# fresh clone builds (and `go vet` runs) without npm; run this only to move
# to another version, then commit the result.
#   bash scripts/swagger-ui.sh            # the pinned version
#   bash scripts/swagger-ui.sh 5.36.0     # another one (then update VERSION below)
set -euo pipefail

VERSION=${1:-5.35.0}
# The minimal set: the bundle, its stylesheet, an icon, and the licences.
FILES=(swagger-ui-bundle.js swagger-ui.css favicon-32x32.png LICENSE NOTICE swagger-ui-bundle.js.LICENSE.txt)

repo=$(cd "$(dirname "$0")/.." && pwd)
out=$repo/api/swaggerui/dist
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

echo "==> swagger-ui: npm pack swagger-ui-dist@$VERSION"
(cd "$tmp" && npm pack --silent "swagger-ui-dist@$VERSION" >/dev/null)
tar -xzf "$tmp"/swagger-ui-dist-*.tgz -C "$tmp"
rm -rf "$out"
mkdir -p "$out"
for f in "${FILES[@]}"; do
  cp "$tmp/package/$f" "$out/$f"
done
# Source maps are not shipped: drop the comment that asks browsers for one.
sed -i 's|/\*# sourceMappingURL=[^*]*\*/||' "$out/swagger-ui.css"
echo "$VERSION" > "$out/VERSION"
echo "==> swagger-ui: $VERSION in $out ($(du -sh "$out" | cut -f1))"
