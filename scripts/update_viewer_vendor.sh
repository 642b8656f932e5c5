#!/usr/bin/env bash
# Rebuild the vendored browser viewer (NiiVue) from npm: one minified ES module bundle served by
# the web application from src/liverseg/service/static/vendor/ (nothing is loaded from a CDN).
#
#   scripts/update_viewer_vendor.sh            # rebuild exactly: npm ci from scripts/viewer_vendor/
#   scripts/update_viewer_vendor.sh 0.70.0     # upgrade: new package.json + package-lock.json there
#
# The pinned versions (NiiVue, its dependencies, esbuild) are scripts/viewer_vendor/package.json and
# package-lock.json. Needs node >= 18, npm and the npm registry. Writes:
#   niivue.min.js       @niivue/niivue bundled with its dependencies by esbuild (ESM, minified)
#   niivue.LICENSES.txt the licenses of everything in the bundle (NiiVue: BSD-2-Clause)
#   vendor.json         package, version, license, npm integrity, sha256 and size of the bundle,
#                       the bundled packages with versions and licenses, the build tool
# Left out of the bundle: the OME-Zarr compression codecs (numcodecs: blosc/zstd/lz4 WebAssembly,
# 1.4 MB), imported lazily by NiiVue's zarr reader only; the viewer opens NIfTI files, never Zarr.
set -euo pipefail

ESBUILD_VERSION="0.28.2"
REPO="$(cd "$(dirname "$0")/.." && pwd)"
PINS="$REPO/scripts/viewer_vendor"
DEST="$REPO/src/liverseg/service/static/vendor"
WORK="$(mktemp -d)"
trap 'rm -rf "$WORK"' EXIT

cd "$WORK"
if [ $# -ge 1 ]; then  # upgrade: resolve a new dependency tree and keep its lock file
  npm init -y >/dev/null
  npm install --no-audit --no-fund --save-exact "@niivue/niivue@$1" "esbuild@$ESBUILD_VERSION" >/dev/null
  mkdir -p "$PINS"
  node -e 'const p=require("./package.json"); require("fs").writeFileSync(process.argv[1], JSON.stringify({name: "liverseg-viewer-vendor", private: true, description: "pins of scripts/update_viewer_vendor.sh", dependencies: p.dependencies}, null, 2) + "\n")' "$PINS/package.json"
  cp package-lock.json "$PINS/package-lock.json"
else
  cp "$PINS/package.json" "$PINS/package-lock.json" .
  npm ci --no-audit --no-fund >/dev/null
fi
NIIVUE_VERSION="$(node -p 'require("./node_modules/@niivue/niivue/package.json").version')"
cat >entry.js <<'EOF'
export { Niivue, NVImage, SLICE_TYPE, DRAG_MODE, SHOW_RENDER, MULTIPLANAR_TYPE } from "@niivue/niivue";
EOF
npx esbuild entry.js --bundle --minify --format=esm --target=es2020 --legal-comments=eof \
  --external:numcodecs --external:'numcodecs/*' --metafile=meta.json --outfile=niivue.min.js \
  --log-level=warning

# The npm package of NiiVue ships no LICENSE file; its package.json says BSD-2-Clause and the
# repository (github.com/niivue/niivue) holds this notice.
cat >niivue-license.txt <<'EOF'
BSD 2-Clause License

Copyright (c) 2021, Niivue
All rights reserved.

Redistribution and use in source and binary forms, with or without
modification, are permitted provided that the following conditions are met:

1. Redistributions of source code must retain the above copyright notice, this
   list of conditions and the following disclaimer.

2. Redistributions in binary form must reproduce the above copyright notice,
   this list of conditions and the following disclaimer in the documentation
   and/or other materials provided with the distribution.

THIS SOFTWARE IS PROVIDED BY THE COPYRIGHT HOLDERS AND CONTRIBUTORS "AS IS"
AND ANY EXPRESS OR IMPLIED WARRANTIES, INCLUDING, BUT NOT LIMITED TO, THE
IMPLIED WARRANTIES OF MERCHANTABILITY AND FITNESS FOR A PARTICULAR PURPOSE ARE
DISCLAIMED. IN NO EVENT SHALL THE COPYRIGHT HOLDER OR CONTRIBUTORS BE LIABLE
FOR ANY DIRECT, INDIRECT, INCIDENTAL, SPECIAL, EXEMPLARY, OR CONSEQUENTIAL
DAMAGES (INCLUDING, BUT NOT LIMITED TO, PROCUREMENT OF SUBSTITUTE GOODS OR
SERVICES; LOSS OF USE, DATA, OR PROFITS; OR BUSINESS INTERRUPTION) HOWEVER
CAUSED AND ON ANY THEORY OF LIABILITY, WHETHER IN CONTRACT, STRICT LIABILITY,
OR TORT (INCLUDING NEGLIGENCE OR OTHERWISE) ARISING IN ANY WAY OUT OF THE USE
OF THIS SOFTWARE, EVEN IF ADVISED OF THE POSSIBILITY OF SUCH DAMAGE.
EOF

node - "$NIIVUE_VERSION" "$ESBUILD_VERSION" <<'EOF'
const fs = require("fs"), path = require("path"), crypto = require("crypto");
const [niivueVersion, esbuildVersion] = process.argv.slice(2);
const meta = JSON.parse(fs.readFileSync("meta.json", "utf8"));
const lock = JSON.parse(fs.readFileSync("package-lock.json", "utf8"));
// every npm package with code in the bundle
const pkgs = new Set();
for (const input of Object.keys(meta.outputs["niivue.min.js"].inputs)) {
  const m = input.match(/node_modules\/((?:@[^/]+\/)?[^/]+)\//);
  if (m) pkgs.add(m[1]);
}
const bundled = {};
let licenses = "Licenses of the software in niivue.min.js (bundled by scripts/update_viewer_vendor.sh)\n";
for (const name of [...pkgs].sort()) {
  const dir = path.join("node_modules", name);
  const pj = JSON.parse(fs.readFileSync(path.join(dir, "package.json"), "utf8"));
  bundled[name] = {version: pj.version, license: pj.license};
  let text = null;
  if (name === "@niivue/niivue") text = fs.readFileSync("niivue-license.txt", "utf8");
  else {
    const file = fs.readdirSync(dir).find((f) => /^(licen[cs]e|copying)(\.(md|txt))?$/i.test(f));
    if (!file) throw new Error(`no license file in ${name}: cannot redistribute it`);
    text = fs.readFileSync(path.join(dir, file), "utf8");
  }
  licenses += `\n==== ${name} ${pj.version} (${pj.license}) ====\n\n${text.trim()}\n`;
}
const bundle = fs.readFileSync("niivue.min.js");
const entry = lock.packages["node_modules/@niivue/niivue"];
const info = {
  package: "@niivue/niivue",
  version: niivueVersion,
  license: entry.license,
  npm_integrity: entry.integrity,
  file: "niivue.min.js",
  bytes: bundle.length,
  sha256: crypto.createHash("sha256").update(bundle).digest("hex"),
  built_with: `esbuild ${esbuildVersion} --bundle --minify --format=esm --target=es2020`,
  excluded: "numcodecs (OME-Zarr compression codecs, loaded lazily by the zarr reader; the viewer opens NIfTI only)",
  bundled_packages: bundled,
};
fs.writeFileSync("niivue.LICENSES.txt", licenses);
fs.writeFileSync("vendor.json", JSON.stringify(info, null, 2) + "\n");
EOF

mkdir -p "$DEST"
cp niivue.min.js niivue.LICENSES.txt vendor.json "$DEST/"
echo "vendored @niivue/niivue $NIIVUE_VERSION into $DEST:"
ls -l "$DEST"
