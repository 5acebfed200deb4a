#!/usr/bin/env bash
# Builds .gpu-pack/clip-eval-gpu.tar.xz: everything scripts/gpu-check.sh needs on a GPU machine that has
# Python (PyTorch, onnx, numpy) but no Node and no network: this Node binary, the built dist/, the
# production node_modules (onnxruntime-node's linux/x64 binaries, sharp's libvips), Debian's Vulkan loader
# (onnxruntime's WebGPU provider loads libvulkan.so.1 at run time; it is placed beside libonnxruntime.so.1,
# where that library looks first), the reference harness's Python files and the CLIP tokenizer files.
# A device run carries at most 64 MiB with the working tree, so the pack must stay under 60 MiB.
#
#   scripts/gpu-pack.sh [--shared DIR]     (run here, after npm run build; GPU_PACK_XZ_LEVEL=-0 packs faster, larger)
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
shared=${CLIP_EVAL_SHARED:-$root/../shared}
while [ $# -gt 0 ]; do
  case $1 in
    --shared) shared=${2:?--shared needs a folder}; shift 2 ;;
    *) echo "gpu-pack: unknown argument $1; usage: scripts/gpu-pack.sh [--shared DIR]" >&2; exit 2 ;;
  esac
done
readonly LIMIT_BYTES=$((60 * 1024 * 1024))
out_dir=$root/.gpu-pack
pack=$out_dir/clip-eval-gpu.tar.xz
harness=$shared/reference/harness
tokenizer=$shared/clip-tokenizer

fail() { echo "gpu-pack: $*" >&2; exit 3; }
[ -f "$root/dist/scripts/gpu-check.js" ] || fail "$root/dist/scripts/gpu-check.js missing; run npm run build first"
[ -f "$harness/export_onnx.py" ] || fail "$harness: no reference harness there; pass --shared DIR (the folder holding reference/ and clip-tokenizer/)"
[ -f "$tokenizer/tokenizer.json" ] || fail "$tokenizer/tokenizer.json missing"
command -v xz >/dev/null || fail "xz not found; apt-get install xz-utils"

stage=$(mktemp -d "${TMPDIR:-/tmp}/clip-eval-gpu-pack.XXXXXX")
trap 'rm -rf "$stage"' EXIT
top=$stage/clip-eval-gpu
app=$top/clip-eval
mkdir -p "$top/node/bin" "$app/dist" "$top/harness" "$top/clip-tokenizer"

node_bin=$(node -p process.execPath)
cp "$node_bin" "$top/node/bin/node"

cp "$root/package.json" "$app/"
cp -r "$root/bin" "$app/bin"
(cd "$root/dist" && find src scripts -type f -name '*.js' -print0 | xargs -0 cp --parents -t "$app/dist")

# The production dependency tree as npm resolved it, without packages npm calls extraneous.
mkdir -p "$app/node_modules"
(cd "$root" && npm ls --omit=dev --all --parseable --long 2>/dev/null) | tail -n +2 | grep -v ':EXTRANEOUS' | cut -d: -f1 |
  while read -r dir; do
    rel=${dir#"$root"/node_modules/}
    mkdir -p "$app/node_modules/$(dirname "$rel")"
    cp -rL "$root/node_modules/$rel" "$app/node_modules/$rel"
  done
ort_bin=$app/node_modules/onnxruntime-node/bin/napi-v6
[ -f "$ort_bin/linux/x64/libonnxruntime.so.1" ] || fail "onnxruntime-node has no linux/x64 binaries in $root/node_modules"
find "$ort_bin" -mindepth 1 -maxdepth 2 -not -path "$ort_bin/linux" -not -path "$ort_bin/linux/x64" -exec rm -rf {} +

# Debian's Vulkan loader, from the package itself (apt-get download needs no root), else the installed copy.
vulkan_deb=$stage/deb
mkdir -p "$vulkan_deb"
if (cd "$vulkan_deb" && apt-get download libvulkan1 >/dev/null 2>&1) && dpkg -x "$vulkan_deb"/libvulkan1_*.deb "$vulkan_deb/x"; then
  vulkan=$(find "$vulkan_deb/x" -name 'libvulkan.so.1.*' -type f | head -1)
  vulkan_source="Debian package $(basename "$vulkan_deb"/libvulkan1_*.deb)"
else
  vulkan=$(readlink -f "$(ldconfig -p | awk '/libvulkan\.so\.1 .*x86-64/ {print $NF; exit}')" 2>/dev/null || true)
  vulkan_source="installed $vulkan"
fi
[ -n "$vulkan" ] && [ -f "$vulkan" ] || fail "no Vulkan loader: apt-get download libvulkan1 failed and none is installed"
cp "$vulkan" "$ort_bin/linux/x64/libvulkan.so.1"

cp "$harness"/*.py "$top/harness/"
cp "$tokenizer/tokenizer.json" "$tokenizer/tokenizer_config.json" "$top/clip-tokenizer/"
{
  echo "clip-eval GPU pack, built $(date -u +%Y-%m-%dT%H:%M:%SZ) from $(cd "$root" && git rev-parse --short HEAD 2>/dev/null || echo 'no git')"
  echo "node $("$node_bin" --version) ($node_bin); onnxruntime-node $(node -p "require('$root/node_modules/onnxruntime-node/package.json').version")"
  echo "Vulkan loader: $vulkan_source"
} >"$top/PACK-INFO.txt"

mkdir -p "$out_dir"
rm -f "$pack.tmp"
tar -C "$stage" -cf - clip-eval-gpu | xz "${GPU_PACK_XZ_LEVEL:--9}" -T0 -c >"$pack.tmp"
mv "$pack.tmp" "$pack"
bytes=$(stat -c %s "$pack")
unpacked=$(du -sb "$top" | cut -f1)
awk -v pack="$pack" -v b="$bytes" -v u="$unpacked" 'BEGIN { printf "gpu-pack: %s: %.1f MiB (%.1f MiB unpacked); a device run carries 64 MiB in all\n", pack, b / 1048576, u / 1048576 }'
[ "$bytes" -le "$LIMIT_BYTES" ] || fail "$pack is over the 60 MiB a device run can carry"
