#!/usr/bin/env bash
# Runs Debian's Alertmanager (ALERTMANAGER_BIN) from the component cache, with the given arguments.
#
# The Debian build reads its notification templates (default.tmpl) and its web pages from
# /usr/share/prometheus/alertmanager, an absolute path no flag changes (without default.tmpl it
# refuses every config: "failed to parse templates"). The cache holds those files under its own
# usr/share, so Alertmanager runs in a private mount namespace in which the cache's usr/share is
# layered read-only over /usr/share (overlayfs): nothing on the host changes, and the process sees
# the files where it looks for them. Debian ships no built web UI (its ui/ is empty): the page at /
# says so and links to /metrics; use amtool or the API (/api/v2/alerts), or build the UI with the
# package's generate-ui.sh. Used by the testbed (testbed/alertmanager.py): the demo and the tests.
set -euo pipefail
: "${ALERTMANAGER_BIN:?source .cache/components/env first}" "${ALERTMANAGER_WEB_DIR:?source .cache/components/env first}"

if [[ -f /usr/share/prometheus/alertmanager/default.tmpl ]]; then
  exec "$ALERTMANAGER_BIN" "$@" # the package is installed on this machine
fi
share=${ALERTMANAGER_WEB_DIR%/prometheus/alertmanager}
if ((EUID == 0)); then
  namespace=(unshare --mount)
else
  namespace=(unshare --mount --map-root-user) # an unprivileged user namespace (Linux >= 5.11 for overlayfs)
fi
# exec all the way down: the PID the caller started is Alertmanager's, so its signals reach it.
# shellcheck disable=SC2016 # $1, $@ belong to the inner shell
exec "${namespace[@]}" -- /bin/sh -c \
  'mount -t overlay overlay -o "lowerdir=$1:/usr/share" /usr/share && shift && exec "$@"' \
  sh "$share" "$ALERTMANAGER_BIN" "$@"
