#!/usr/bin/env bash
# Installs what the tests need and is missing: system packages through apt
# when run as root (otherwise it prints the command to run), then the npm
# packages pinned in e2e/node/package-lock.json. Idempotent and quick when
# everything is there; `make test` runs it first.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

missing=()
command -v protoc >/dev/null || missing+=(protobuf-compiler)
[ -x /usr/bin/chromium ] || missing+=(chromium fonts-liberation)
command -v certutil >/dev/null || missing+=(libnss3-tools)
{ command -v node >/dev/null && command -v npm >/dev/null; } || missing+=(nodejs npm)
command -v git >/dev/null || missing+=(git)
[ -x /usr/sbin/sshd ] || missing+=(openssh-server)
command -v ssh-keygen >/dev/null || missing+=(openssh-client)
command -v ip >/dev/null || missing+=(iproute2)
[ -x /usr/sbin/haproxy ] || command -v haproxy >/dev/null || missing+=(haproxy)
[ -x /usr/bin/prometheus ] || missing+=(prometheus)

if [ ${#missing[@]} -gt 0 ]; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    echo "installing: ${missing[*]}" >&2
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
  else
    echo "missing: ${missing[*]}; run as root: apt-get install -y ${missing[*]}" >&2
    exit 1
  fi
fi

# npm ci only when the installed tree is older than the lockfile.
lock=e2e/node/package-lock.json
stamp=e2e/node/node_modules/.package-lock.json
if [ ! -f "$stamp" ] || [ "$lock" -nt "$stamp" ]; then
  npm ci --prefix e2e/node --no-audit --no-fund --loglevel=error
fi
