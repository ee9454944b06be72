#!/usr/bin/env bash
# check-deps.sh [DEB]: resolve the Depends of a cvedge .deb (by default those of
# scripts/nfpm.yaml) against the package lists of each distribution it installs on, so that a
# renamed library (Ubuntu 24.04's t64 names) fails here and not on a factory box:
#
#   debian-bookworm-amd64   Debian 12, amd64
#   debian-bookworm-arm64   Debian 12, arm64, which is also Raspberry Pi OS bookworm 64-bit
#                           (its own archive adds packages on top of Debian's: not checked)
#   ubuntu-noble-amd64      Ubuntu 24.04, amd64 (main and universe)
#
# Each distribution gets its own apt state under .cache/apt/NAME (apt.conf, given by APT_CONFIG,
# lists, cache, an empty dpkg status, its sources.list): the machine's apt configuration,
# sources and state are never read or changed.
# The lists are downloaded once and refreshed when older than CHECK_DEPS_MAX_AGE minutes
# (default 1440). apt-get -s satisfy then installs Depends on an empty system, in simulation,
# and the script prints how many packages that pulls and their installed size. A run that
# passed is remembered (.cache/apt/NAME/passed): the same Depends against the same lists is
# not resolved again.
#
# A distribution whose archive cannot be reached is checked against the lists of an earlier
# run if there are some, else skipped with a warning; under CI=true it fails. Used by make deb (and so make test).
set -euo pipefail
cd "$(dirname "$0")/.."

fail() { printf 'check-deps: %s\n' "$*" >&2; exit 1; }

deb=${1:-}
if [[ -n "$deb" ]]; then
	depends=$(dpkg-deb -f "$deb" Depends) || fail "$deb: not a .deb: give the path of one make deb wrote (dist/cvedge_*.deb)"
else
	depends=$(sed -n '/^depends:/,/^[a-z]/s/^  - //p' scripts/nfpm.yaml | paste -sd, | sed 's/,/, /g')
fi
[[ -n "$depends" ]] || fail "no Depends to check (${deb:-scripts/nfpm.yaml})"
max_age=${CHECK_DEPS_MAX_AGE:-1440}
cache=.cache/apt

# name, architecture, sources.list line. Debian 12 has no Ubuntu archive key (ubuntu-keyring
# is not in bookworm), so Ubuntu's Release file is not authenticated (trusted=yes): apt still
# checks the lists against its hashes, and nothing is installed from them, names are only read.
dists=(
	"debian-bookworm-amd64 amd64 deb [signed-by=/usr/share/keyrings/debian-archive-keyring.gpg] http://deb.debian.org/debian bookworm main"
	"debian-bookworm-arm64 arm64 deb [signed-by=/usr/share/keyrings/debian-archive-keyring.gpg] http://deb.debian.org/debian bookworm main"
	"ubuntu-noble-amd64 amd64 deb [trusted=yes] http://archive.ubuntu.com/ubuntu noble main universe"
)

aptconf() { # the apt configuration of the isolated state of distribution $1 for architecture $2
	local root=$PWD/$cache/$1
	cat <<CONF
Dir::Etc "$root/etc"; Dir::Etc::SourceList "sources.list"; Dir::Etc::SourceParts "sources.list.d";
Dir::Etc::Parts "apt.conf.d"; Dir::Etc::Preferences "preferences"; Dir::Etc::PreferencesParts "preferences.d";
Dir::State "$root/state"; Dir::State::status "$root/state/status"; Dir::Cache "$root/cache";
Dir::Cache::pkgcache "pkgcache.bin"; Dir::Cache::srcpkgcache "srcpkgcache.bin";
APT::Architecture "$2"; APT::Architectures { "$2"; }; Acquire::Languages "none";
Acquire::IndexTargets::deb::DEP-11::DefaultEnabled "false"; Acquire::IndexTargets::deb::DEP-11-icons::DefaultEnabled "false";
APT::Sandbox::User "root"; Debug::NoLocking "true"; Acquire::Retries "1"; Acquire::http::Timeout "20";
CONF
}

unreachable() { # distribution, what failed
	if [[ "${CI:-}" == true ]]; then
		fail "$1: $2: the archive must be reachable under CI=true"
	fi
	printf 'check-deps: %s: skipped: %s\n' "$1" "$2" >&2
}

# apt state of a distribution: made and updated when missing or stale; returns 1 if unreachable
state() { # name arch sources-line
	local name=$1 arch=$2 line=$3 root=$cache/$1
	mkdir -p "$root/etc/sources.list.d" "$root/etc/apt.conf.d" "$root/etc/preferences.d" \
		"$root/state/lists/partial" "$root/cache/archives/partial"
	touch "$root/state/status"
	aptconf "$name" "$arch" >"$root/apt.conf"
	printf '%s\n' "$line" >"$root/etc/sources.list"
	local stamp=$root/state/updated
	if [[ -f "$stamp" && -z "$(find "$stamp" -mmin +"$max_age")" && "$(cat "$stamp")" == "$line" ]]; then
		return 0
	fi
	if ! APT_CONFIG=$root/apt.conf apt-get -qq update >"$root/update.log" 2>&1 || grep -qE '^(E:|W: (Failed|Some index))' "$root/update.log"; then
		local why="apt-get update failed ($(grep -m1 '^[WE]:' "$root/update.log" || tail -1 "$root/update.log"))"
		if [[ "${CI:-}" != true && -f "$stamp" ]]; then # lists from an earlier run: still a check
			printf 'check-deps: %s: %s: using the lists of %s\n' "$name" "$why" "$(date -r "$stamp" '+%F %R')" >&2
			return 0
		fi
		unreachable "$name" "$why"
		return 1
	fi
	printf '%s\n' "$line" >"$stamp"
}

IFS=, read -ra groups <<<"$depends"
status=0
for d in "${dists[@]}"; do
	read -r name arch line <<<"$d"
	state "$name" "$arch" "$line" || continue
	export APT_CONFIG=$PWD/$cache/$name/apt.conf
	# the same Depends against the same lists: the result of the last run that passed
	done_file=$cache/$name/passed
	if [[ -f "$done_file" && "$done_file" -nt "$cache/$name/state/updated" && "$(head -1 "$done_file")" == "$depends" ]]; then
		tail -1 "$done_file"
		continue
	fi
	# each entry first, to name the package that is missing (a real or a virtual package)
	names=$(apt-cache pkgnames)
	bad=
	for group in "${groups[@]}"; do
		found=
		for alt in ${group//|/ }; do
			[[ "$alt" == \(* || "$alt" == *\) ]] && continue # a version
			if grep -qxF "${alt%%:*}" <<<"$names"; then found=$alt; break; fi
		done
		if [[ -z "$found" ]]; then
			echo "check-deps: $name: Depends${group}: no such package in $name: add the name it has there as an alternative in scripts/nfpm.yaml (a | b)" >&2
			status=1 bad=1
		fi
	done
	# then the whole list, on an empty system
	if ! out=$(apt-get -s -q satisfy "$depends" 2>&1); then
		echo "check-deps: $name: Depends does not resolve: $(grep -E '^ |^E:' <<<"$out" | tr -s ' \n' ' ')" >&2
		status=1
		continue
	fi
	[[ -z "$bad" ]] || continue
	mapfile -t pkgs < <(awk '$1 == "Inst" {print $2}' <<<"$out")
	kb=$(apt-cache show --no-all-versions "${pkgs[@]}" 2>/dev/null | awk '/^Installed-Size:/ {s += $2} END {print s + 0}')
	result=$(printf 'check-deps: %s: ok (%d packages, %d MB installed, on an empty system)' "$name" "${#pkgs[@]}" $((kb / 1024)))
	echo "$result"
	printf '%s\n%s\n' "$depends" "$result" >"$done_file"
done
exit $status
