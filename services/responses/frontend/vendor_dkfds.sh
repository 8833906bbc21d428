#!/usr/bin/env bash
# Copy the compiled parts of Det Fælles Designsystem that the questionnaire uses from
# node_modules into ../static/dkfds, which is committed: a fresh machine running
# `pip install -e .` then serves the form without needing npm. Re-run after bumping dkfds:
#   cd services/responses/frontend && npm ci && ./vendor_dkfds.sh
set -euo pipefail
cd "$(dirname "$0")"
src=node_modules/dkfds/dist
dst=../static/dkfds
rm -rf "$dst"
mkdir -p "$dst/css" "$dst/fonts/IBMPlexSans/complete/woff2" "$dst/img"
cp "$src/css/dkfds.min.css" "$dst/css/"
for face in Regular Italic Medium MediumItalic SemiBold SemiBoldItalic Bold BoldItalic; do
  cp "$src/fonts/IBMPlexSans/complete/woff2/IBMPlexSans-$face.woff2" "$dst/fonts/IBMPlexSans/complete/woff2/"
done
cp "$src/fonts/IBMPlexSans/complete/woff2/license.txt" "$dst/fonts/IBMPlexSans/complete/woff2/"
cp -r "$src/img/svg-icons" "$dst/img/"
cp "$src/img/all-svg-icons.svg" "$dst/img/"
cp "$src/LICENSE.md" "$dst/LICENSE.md"
echo "dkfds $(node -p "require('./node_modules/dkfds/package.json').version") (MIT; IBM Plex Sans: OFL-1.1; icons: Apache-2.0, see LICENSE.md)" > "$dst/VERSION"
