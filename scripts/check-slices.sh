#!/usr/bin/env bash
# Each function links only its own service SDK (issue 15): the dependency tree of every function,
# as `cargo lambda build` resolves it, holds no other target's SDK and no aws-config SSO support
# (only the CLI needs it); the core links no AWS SDK; shared code names no target.
set -euo pipefail
cd "$(dirname "$0")/.."

declare -A own=(
  [hr-ingest]=""
  [identity-sync]="aws-sdk-identitystore"
  [subscription-sync]="aws-sdk-licensemanagerusersubscriptions"
  [appstream-sync]="aws-sdk-appstream"
  [iam-sync]="aws-sdk-iam"
)
targets=(aws-sdk-identitystore aws-sdk-licensemanagerusersubscriptions aws-sdk-appstream aws-sdk-iam)
fail=0
printf '| crate | AWS crates linked (normal dependencies) |\n|---|---|\n'
for f in hr-ingest identity-sync subscription-sync appstream-sync iam-sync; do
  tree=$(cargo tree --locked -p "$f" -e normal -e features --prefix none)
  sdks=$(grep -oE '^aws-(sdk-[a-z]+|config) v' <<<"$tree" | sed 's/ v$//' | sort -u | tr '\n' ' ')
  printf '| %s | %s|\n' "$f" "$sdks"
  for t in "${targets[@]}"; do
    if [ "$t" != "${own[$f]}" ] && grep -q "^$t v" <<<"$tree"; then echo "FAIL: $f links $t"; fail=1; fi
  done
  if grep -q 'aws-config feature "sso"' <<<"$tree"; then echo "FAIL: $f links aws-config's SSO support"; fail=1; fi
done
# The scheduled reconcile function is, like the CLI, the one composition of every target (it
# reads them all): it links their SDKs and S3, and nothing that writes (checked by the template
# test's IAM policy), still without aws-config's SSO support.
tree=$(cargo tree --locked -p reconcile -e normal -e features --prefix none)
printf '| reconcile (composition) | %s|\n' "$(grep -oE '^aws-(sdk-[a-z0-9]+|config) v' <<<"$tree" | sed 's/ v$//' | sort -u | tr '\n' ' ')"
if grep -q 'aws-config feature "sso"' <<<"$tree"; then echo "FAIL: reconcile links aws-config's SSO support"; fail=1; fi
core=$(cargo tree --locked -p jml-core -e normal --prefix none)
if grep -qE '^aws-(sdk|config|smithy)' <<<"$core"; then echo "FAIL: jml-core links an AWS SDK crate"; fail=1; fi
# Shared code never names a target: no target crate, SDK or ledger name in its code.
if grep -rnE 'identity_sync|subscription_sync|appstream_sync|iam_sync|aws_sdk_(identitystore|iam|appstream|licensemanager)|identity-store|user-subscriptions|appstream-user-pool|iam-users' shared/*/src shared/*/Cargo.toml; then
  echo "FAIL: shared code names a target"; fail=1
fi
[ "$fail" = 0 ] && echo "every function links only its own SDK; jml-core links none; shared code names no target"
exit "$fail"
