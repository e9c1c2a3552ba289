#!/usr/bin/env bash
# Resolve the OpenStack services' top-level pins again and write the frozen sets that
# `make install-openstack` (python -m intercloud.lab.openstack.venvs) installs, one virtualenv each.
# A changed file changes its hash, so the next install makes a new cached virtualenv.
#   scripts/openstack/freeze.sh [OUTDIR]      (default: this directory)
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
out=${1:-$here}
python=${PYTHON:-python3}
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

freeze() {
	local name=$1
	shift
	"$python" -m venv "$tmp/$name"
	"$tmp/$name/bin/pip" install -q "$@"
	"$tmp/$name/bin/pip" freeze >"$out/$name.txt"
	echo "$out/$name.txt: $(wc -l <"$out/$name.txt") packages"
}

mkdir -p "$out"
freeze keystone keystone==30.0.0 &
freeze neutron neutron==29.0.0 neutron-lib==5.0.1 &
# the unmodified `openstack` CLI, for the tenant API proxy's tests (docs/openstack.md)
freeze openstackclient python-openstackclient==10.5.0 &
wait %1 && wait %2 && wait %3
