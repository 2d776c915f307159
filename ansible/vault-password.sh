#!/bin/sh
# Prints the ansible-vault password (ansible.cfg's vault_password_file runs this script).
# It is kept on the control node in ansible/credentials/vault-password (0600, git-ignored), made
# on first use; set KIT_VAULT_PASSWORD_FILE to keep it elsewhere (e.g. a team's password store
# export). It never appears on a command line or in a log.
set -eu
file=${KIT_VAULT_PASSWORD_FILE:-$(dirname "$0")/credentials/vault-password}
if [ ! -s "$file" ]; then
  umask 077
  mkdir -p "$(dirname "$file")"
  tmp=$(mktemp "$file.XXXXXX")
  tr -dc 'A-Za-z0-9' </dev/urandom | head -c 40 >"$tmp"
  # Several runs at once (ansible-lint starts a few): the first link wins, the others read it.
  ln "$tmp" "$file" 2>/dev/null || true
  rm -f "$tmp"
fi
cat "$file"
