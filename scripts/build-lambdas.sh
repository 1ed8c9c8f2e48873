#!/usr/bin/env bash
# Release build of the functions for Lambda (arm64, provided.al2023) with cargo-lambda, and a
# report of each bootstrap's size and zip size. Output: target/lambda/<function>/bootstrap.zip (under CARGO_TARGET_DIR when set).
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/tools.sh

# Every function by default; or the ones named (test.sh on CI names two, see there).
functions=(hr-ingest identity-sync subscription-sync appstream-sync iam-sync reconcile)
if [ "$#" -gt 0 ]; then functions=("$@"); fi
args=()
for f in "${functions[@]}"; do args+=(--bin "$f"); done

start=$(date +%s)
cargo lambda build --release --arm64 --output-format zip "${args[@]}"
seconds=$(( $(date +%s) - start ))

printf '\n| function | bootstrap (bytes) | zip (bytes) |\n|---|---|---|\n'
for f in "${functions[@]}"; do
  zip="${CARGO_TARGET_DIR:-target}/lambda/$f/bootstrap.zip"
  [ -s "$zip" ] || { echo "missing $zip"; exit 1; }
  raw=$(python3 -c "import zipfile,sys; print(zipfile.ZipFile(sys.argv[1]).getinfo('bootstrap').file_size)" "$zip")
  file_type=$(python3 -c "import zipfile,sys; d=zipfile.ZipFile(sys.argv[1]).read('bootstrap')[:20]; print('ELF aarch64' if d[:4]==b'\x7fELF' and d[18]==0xb7 else 'NOT an arm64 ELF')" "$zip")
  [ "$file_type" = "ELF aarch64" ] || { echo "$f: $file_type"; exit 1; }
  printf '| %s | %s | %s |\n' "$f" "$raw" "$(stat -c %s "$zip")"
done
echo "release build: ${seconds}s"
