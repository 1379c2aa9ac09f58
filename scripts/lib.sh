# Shared by docker-smoke.sh and make-local-base-image.sh (sourced; the caller defines log and die).

# Unmounts anything still mounted below $1, deepest first.
unmount_under() {
  local m
  awk -v p="$1" '$2 == p || index($2, p "/") == 1 { print $2 }' /proc/mounts | sort -r |
    while read -r m; do umount -l "$m" 2>/dev/null || true; done
}

# Another process may be running apt/dpkg: wait (bounded) instead of killing it.
wait_for_apt_locks() {
  local waited=0 limit=900 busy
  while :; do
    busy=""
    if command -v fuser >/dev/null 2>&1; then
      fuser /var/lib/dpkg/lock-frontend /var/lib/dpkg/lock \
            /var/lib/apt/lists/lock /var/cache/apt/archives/lock >/dev/null 2>&1 && busy=1
    else
      pgrep -x 'apt-get|apt|dpkg' >/dev/null 2>&1 && busy=1
    fi
    [ -z "$busy" ] && return 0
    [ "$waited" -ge "$limit" ] && die "apt/dpkg lock still held after ${limit}s"
    [ $((waited % 30)) = 0 ] && log "waiting for another apt/dpkg process to finish (${waited}s)"
    sleep 5; waited=$((waited + 5))
  done
}

# apt-get install, with one apt-get update and a retry when the package lists are stale.
apt_install() {
  export DEBIAN_FRONTEND=noninteractive
  wait_for_apt_locks
  if ! timeout 900 apt-get -o DPkg::Lock::Timeout=600 install -y --no-install-recommends "$@"; then
    log "apt-get install failed; running apt-get update once and retrying"
    wait_for_apt_locks
    timeout 300 apt-get -o DPkg::Lock::Timeout=600 update || die "apt-get update failed"
    wait_for_apt_locks
    timeout 900 apt-get -o DPkg::Lock::Timeout=600 install -y --no-install-recommends "$@" \
      || die "apt-get install $* failed"
  fi
}
