# Sourced by scripts/bootstrap.sh and scripts/test.sh.
# optional_package WHO COMMAND PACKAGE WHAT: install Debian's PACKAGE when COMMAND is missing and this can
# (root, apt-get). Never required: without it, WHAT says so (skipped or inconclusive) and the rest goes on.
optional_package() {
  local who=$1 command=$2 package=$3 what=$4
  if command -v "$command" >/dev/null 2>&1 || [ -x "/usr/sbin/$command" ]; then
    return 0
  fi
  if [ "$(id -u)" -eq 0 ] && command -v apt-get >/dev/null 2>&1; then
    echo "$who: installing Debian's $package (for $what)"
    (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$package" >/dev/null) \
      || echo "$who: could not install $package: $what will say why it cannot run" >&2
  else
    echo "$who: $package is missing (not root): $what will say why it cannot run" >&2
  fi
}
