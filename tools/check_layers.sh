#!/usr/bin/env bash
# Fails when a file includes a header from a layer above its own (DESIGN.md: tools -> train ->
# models -> kernels -> core). The link check (br_layer_check_* in CMakeLists.txt) catches calls;
# this catches header-only uses too.
set -euo pipefail
cd "${1:-$(dirname "$0")/..}"
above_core="kernels|models|train|tools"
above_kernels="models|train|tools"
above_models="train|tools"
above_train="tools"
bad=0
for layer in core kernels models train; do
  var="above_$layer"
  if grep -rnE "#include \"(${!var})/" "$layer" --include='*.h' --include='*.cpp' --include='*.cu' \
      --include='*.cuh'; then
    echo "check_layers: $layer/ includes a header from a layer above it (${!var})" >&2
    bad=1
  fi
done
exit $bad
