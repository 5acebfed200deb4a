#!/usr/bin/env bash
# The GPU check, run on the GPU machine from the pack scripts/gpu-pack.sh built (it needs Python with
# PyTorch, numpy and onnx there, and nothing of Node): unpacks the pack into a temporary folder, points
# the Vulkan loader at NVIDIA's driver and onnxruntime at a CUDA provider where either can be found, and
# runs dist/scripts/gpu-check.js with the packed Node. Prints one table; the table, a JSON copy and the
# logs go to --out (default $OUT, else ./gpu-check-out). Exit 0: every step ran; 1: a step failed (its row
# has the error); 3: the pack cannot be used.
#
#   scripts/gpu-check.sh [--pack FILE] [--out DIR] [--python PATH] [gpu-check.js options: --images N,
#                        --cpu-images N, --size b32|tiny, --batch-size N, --devices LIST, --peer-devices LIST,
#                        --budget-seconds S]
# Dry run on a CPU machine:
#   scripts/gpu-check.sh --python /usr/bin/python3 --images 200 --cpu-images 100 --devices cpu,webgpu,cuda --peer-devices cpu,cuda
set -uo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
pack=$root/.gpu-pack/clip-eval-gpu.tar.xz
out=${OUT:-$PWD/gpu-check-out}
python=${PYTHON:-python3}
forward=()
while [ $# -gt 0 ]; do
  case $1 in
    --pack) pack=${2:?--pack needs a file}; shift 2 ;;
    --out) out=${2:?--out needs a folder}; shift 2 ;;
    --python) python=${2:?--python needs a path}; shift 2 ;;
    *) forward+=("$1"); shift ;;
  esac
done

fail() { echo "gpu-check: $*" >&2; exit 3; }
[ -f "$pack" ] || fail "$pack not found; build it with scripts/gpu-pack.sh and carry .gpu-pack to this machine"
mkdir -p "$out" || fail "cannot create $out"
out=$(cd "$out" && pwd)
work=$(mktemp -d "${TMPDIR:-/tmp}/clip-eval-gpu.XXXXXX") || fail "cannot create a temporary folder"
trap 'rm -rf "$work"' EXIT

started=$(date +%s)
if command -v xz >/dev/null; then
  timeout 120 tar -C "$work" -xJf "$pack" || fail "$pack: tar -xJf failed or took over 120 s"
else
  timeout 120 "$python" -c 'import sys, tarfile; tarfile.open(sys.argv[1]).extractall(sys.argv[2])' "$pack" "$work" ||
    fail "$pack: unpacking with $python's tarfile failed or took over 120 s"
fi
top=$work/clip-eval-gpu
node=$top/node/bin/node
"$node" --version >/dev/null 2>"$work/node-error" || fail "the packed Node does not start here: $(tail -1 "$work/node-error")"
echo "gpu-check: unpacked $(basename "$pack") in $(($(date +%s) - started)) s; $(head -1 "$top/PACK-INFO.txt")"

# WebGPU (Dawn) needs a Vulkan driver manifest. Containers given the GPU for compute only often lack
# NVIDIA's; where its Vulkan library is there, a manifest naming it is enough.
if [ -z "${VK_ICD_FILENAMES:-}${VK_DRIVER_FILES:-}" ] && ! ls /etc/vulkan/icd.d/*.json /usr/share/vulkan/icd.d/*.json >/dev/null 2>&1; then
  nvidia_vulkan=$(ldconfig -p 2>/dev/null | awk '/libGLX_nvidia\.so\.0 .*x86-64/ {print $NF; exit}')
  if [ -n "$nvidia_vulkan" ]; then
    printf '{"file_format_version": "1.0.0", "ICD": {"library_path": "%s", "api_version": "1.3.0"}}\n' "$nvidia_vulkan" >"$work/nvidia_icd.json"
    export VK_ICD_FILENAMES=$work/nvidia_icd.json
    echo "gpu-check: no Vulkan driver manifest; wrote one for $nvidia_vulkan"
  fi
fi

# onnxruntime-node's CUDA provider is a separate download that no pack carries; a Python onnxruntime-gpu of
# the same version has the same libraries. CUDA and cuDNN libraries from PyTorch's wheels go on the path.
ort_bin=$top/clip-eval/node_modules/onnxruntime-node/bin/napi-v6/linux/x64
ort_version=$("$node" -p "require('$top/clip-eval/node_modules/onnxruntime-node/package.json').version")
ort_py=$(timeout 60 "$python" -c 'import onnxruntime, os; print(onnxruntime.__version__, os.path.dirname(onnxruntime.__file__))' 2>/dev/null)
if [ "${ort_py%% *}" = "$ort_version" ] && [ -f "${ort_py#* }/capi/libonnxruntime_providers_cuda.so" ]; then
  cp "${ort_py#* }"/capi/libonnxruntime_providers_{cuda,shared}.so "$ort_bin/" && echo "gpu-check: CUDA provider from Python's onnxruntime $ort_version"
fi
cuda_libs=$(timeout 60 "$python" -c 'import glob, os, torch; print(":".join(sorted({os.path.dirname(p) for p in glob.glob(os.path.join(os.path.dirname(torch.__file__), "..", "nvidia", "*", "lib", "*.so*"))} | {os.path.join(os.path.dirname(torch.__file__), "lib")})))' 2>/dev/null)
[ -n "$cuda_libs" ] && export LD_LIBRARY_PATH=$cuda_libs${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}

"$node" "$top/clip-eval/dist/scripts/gpu-check.js" --root "$top/clip-eval" --harness "$top/harness" --tokenizer-dir "$top/clip-tokenizer" \
  --python "$python" --out "$out" "${forward[@]}"
code=$?
cp "$top/PACK-INFO.txt" "$out/" 2>/dev/null
echo "gpu-check: $(($(date +%s) - started)) s in all; results in $out"
exit $code
