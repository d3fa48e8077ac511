#!/usr/bin/env bash
# mypy over edgeseg's four packages under their import names (edgeseg, edgeseg.export,
# edgeseg.calib, edgeseg.runtime). pyproject maps the last three to export/, calib/, runtime/ via
# setuptools' package-dir, which mypy cannot resolve (it has no such option and does not run the
# editable install's import hook), so the layout is mirrored with symlinks in build/typecheck/ and
# mypy runs there; reported paths are mapped back to the repository's files. Settings:
# pyproject.toml [tool.mypy]. Exit status: mypy's (0 = no errors).
set -euo pipefail
cd "$(dirname "$0")/.."
tree=build/typecheck
rm -rf "$tree"
mkdir -p "$tree/edgeseg"
for entry in edgeseg/*; do
  [ "$(basename "$entry")" = "__pycache__" ] || ln -s "../../../$entry" "$tree/edgeseg/"
done
for sub in export calib runtime; do ln -s "../../../$sub" "$tree/edgeseg/$sub"; done
status=0
.venv/bin/python -m mypy --config-file pyproject.toml "$@" "$tree/edgeseg" > "$tree/mypy.out" 2>&1 || status=$?
sed -e "s#^$tree/edgeseg/\(export\|calib\|runtime\)/#\1/#" -e "s#^$tree/edgeseg/#edgeseg/#" "$tree/mypy.out"
exit "$status"
