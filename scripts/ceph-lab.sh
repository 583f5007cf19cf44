#!/usr/bin/env bash
# A throwaway single-node Ceph with RGW on 127.0.0.1, for the end-to-end test
# and for people who want to point a real RGW at rgw-nats. Everything it
# starts lives under one directory (config, data, pid files, admin sockets,
# logs); stop kills only the PIDs recorded there. Run with --help.
set -euo pipefail

prog=${0##*/}

usage() {
	cat <<USAGE
Usage: $prog [--release R] install
       $prog [--release R] [--debug-rgw N] start DIR
       $prog stop DIR
       $prog status DIR
       $prog env DIR
       $prog run DIR COMMAND [ARG...]

A single-node Ceph (one mon, one memstore OSD, one radosgw) on 127.0.0.1,
everything under DIR, no systemd. Needs root for install; start/stop do not
touch anything outside DIR (Tentacle: start needs root too, and makes an
empty mount point for DIR in its root, see below).

Commands:
  install     apt-get install what is missing (ceph-mon ceph-osd radosgw
              ceph-common uuid-runtime awscli openssl curl, no recommends);
              runs apt-get update only when radosgw has no candidate;
              with --release tentacle: debootstrap uuid-runtime awscli
              openssl curl on the host, then the root (once; a root that
              is there is kept: remove CEPH_LAB_ROOTFS to build it anew)
  start DIR   create and start the cluster in DIR (idempotent: a running lab
              is left alone, a half-dead one is rebuilt, since a restarted
              memstore OSD has lost its data), create an S3 user, write
              DIR/lab.env and print it
  stop DIR    stop the daemons whose PIDs DIR records (TERM, then KILL)
  status DIR  which daemons run, and ceph's health
  env DIR     print DIR/lab.env (export lines: endpoints, keys, paths)
  run DIR CMD run a Ceph tool (ceph, radosgw-admin, ...) of DIR's release
              on DIR's cluster: on Pacific the host's, on Tentacle the one in
              its root; paths outside DIR are not visible to it there

stop, status, env and run read the release from DIR (start records it).

Releases:
  pacific     (default) Debian bookworm's Ceph 16.2.15, installed on the host.
              Ports: mon 3300 (v2) and 6789 (v1); OSD 6800-7300; RGW S3 on
              http://127.0.0.1:8000 (civetweb) and https://127.0.0.1:8443
              (beast, a self-signed certificate made in DIR).
  tentacle    Ceph 20.2 from Debian sid, in a root built once by install
              with debootstrap (minbase; ~780 MB; 1-6 min, network to the
              Debian mirror apt is configured with) in CEPH_LAB_ROOTFS
              (default /var/tmp/ceph-lab-tentacle). The daemons run chrooted
              there, sharing the host's network; DIR is bind-mounted at its
              own path inside the root, in a mount namespace of their own,
              so nothing stays mounted when they end. Ports: mon 13300 (v2)
              and 16789 (v1); OSD 17000-17100; RGW S3 on
              http://127.0.0.1:17480 and https://127.0.0.1:17443 (beast
              both: Tentacle has no civetweb). Its radosgw does not end on
              SIGTERM: stop kills it. Pacific and Tentacle labs can run at
              the same time; one lab of each release at a time (fixed ports).
Create topics whose push-endpoint carries user:password through the https
port: RGW refuses secrets over plain http.

Options:
  --release R     pacific or tentacle (default pacific, env CEPH_LAB_RELEASE)
  --debug-rgw N   RGW log level (default 1, env CEPH_LAB_DEBUG_RGW); 20 makes
                  Lua RGWDebugLog lines appear in DIR/log/rgw.log
  -h, --help      this text

Example:
  sudo $prog install
  $prog start /tmp/lab && . /tmp/lab/lab.env
  aws --endpoint-url "\$CEPH_LAB_ENDPOINT" s3 mb s3://demo
  $prog stop /tmp/lab
  sudo $prog --release tentacle install
  $prog --release tentacle start /tmp/lab-t
  $prog run /tmp/lab-t radosgw-admin user list
  $prog stop /tmp/lab-t
USAGE
}

die() {
	printf '%s: %s\n' "$prog" "$*" >&2
	exit 2
}

fail() {
	printf '%s: %s\n' "$prog" "$*" >&2
	exit 1
}

packages=(ceph-mon ceph-osd radosgw ceph-common uuid-runtime awscli openssl curl)

# What Tentacle needs on the host (Ceph itself is in its root) and in the root.
tentacle_host_packages=(debootstrap uuid-runtime awscli openssl curl)
tentacle_root_packages=(ceph-mon ceph-osd radosgw ceph-common)

# The daemons, by the name their pid file has.
daemons=(mon.a osd.0 client.rgw.lab)

# use_release sets what differs between the releases: ports, frontends and
# where the Ceph binaries are (root is empty for the host's own).
use_release() {
	release=$1
	case "$release" in
	pacific)
		mon_v2=3300 mon_v1=6789 http_port=8000 https_port=8443 root=
		frontend="civetweb port=127.0.0.1:$http_port num_threads=32"
		osd_ports=
		;;
	tentacle)
		mon_v2=13300 mon_v1=16789 http_port=17480 https_port=17443 root=$rootfs
		frontend="beast endpoint=127.0.0.1:$http_port"
		osd_ports="ms bind port min = 17000
ms bind port max = 17100"
		;;
	*) die "unknown release $release (pacific or tentacle)" ;;
	esac
}

# in_root runs a command of the release's Ceph. For Tentacle that is a
# chroot into its root, in a mount namespace of its own holding /dev, /proc
# and the lab directory $dir (when set) at its own path: the mounts end with the last
# process in it, so the root on disk never has anything mounted in it.
in_root() {
	if [ -z "$root" ]; then
		"$@"
		return
	fi
	[ -z "$dir" ] || mkdir -p "$root$dir"
	# shellcheck disable=SC2016 # expanded by that shell, from its arguments
	unshare --mount --propagation private -- /bin/sh -c '
		root=$1 dir=$2
		shift 2
		mount --bind /dev "$root/dev" &&
			mount -t proc proc "$root/proc" &&
			{ [ -z "$dir" ] || mount --bind "$dir" "$root$dir"; } &&
			exec chroot "$root" "$@"' sh "$root" "$dir" "$@"
}

# drop_mount_point removes the empty directories in_root made in the root
# for DIR, up to (not including) the root's own top-level directory.
drop_mount_point() {
	[ -n "$root" ] || return 0
	local d=$dir
	while [ "${d%/*}" != "" ] && rmdir "$root$d" 2>/dev/null; do
		d=${d%/*}
	done
}

missing_packages() {
	local p
	for p in "$@"; do
		if ! dpkg-query -W -f '${Status}' "$p" 2>/dev/null | grep -q 'install ok installed'; then
			echo "$p"
		fi
	done
}

# debian_mirror prints the URI apt fetches Debian's main suite from: the
# root is built from the same mirror the host is configured with.
debian_mirror() {
	# shellcheck disable=SC2016 # apt's own placeholders
	apt-get indextargets --format '$(ORIGIN) $(RELEASE) $(REPO_URI)' 2>/dev/null |
		awk '$1 == "Debian" && $2 !~ /-/ { print $3; exit }'
}

cmd_install_tentacle() {
	local missing=()
	mapfile -t missing < <(missing_packages "${tentacle_host_packages[@]}")
	if [ ${#missing[@]} -gt 0 ]; then
		[ "$(id -u)" = 0 ] || fail "install needs root (missing: ${missing[*]})"
		if ! apt-cache policy debootstrap 2>/dev/null | grep -q 'Candidate: [0-9]'; then
			apt-get update -q
		fi
		echo "$prog: installing ${missing[*]}"
		DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "${missing[@]}"
	fi
	if [ -f "$rootfs/.ceph-lab-root" ]; then
		echo "$prog: Tentacle root in $rootfs: $(cat "$rootfs/.ceph-lab-root")"
		return 0
	fi
	[ "$(id -u)" = 0 ] || fail "building the Tentacle root needs root"
	local mirror
	mirror=$(debian_mirror)
	[ -n "$mirror" ] || fail "no Debian suite in apt's sources: cannot tell which mirror to build the root from"
	local build=$rootfs.build
	# A build cut short leaves a partial root: start it over. Its mounts were
	# in a namespace that is gone, so removing it removes only the root.
	rm -rf --one-file-system "$build"
	mkdir -p "$build"
	echo "$prog: building a Debian sid root in $build from $mirror (minutes)"
	local started=$SECONDS
	# debootstrap mounts /proc and /sys in the target: in a namespace of
	# its own, so that they go away with it whatever happens.
	nice -n 10 unshare --mount --propagation private -- \
		debootstrap --variant=minbase sid "$build" "$mirror" >"$build.log" 2>&1 ||
		fail "debootstrap failed (log: $build.log): $(tail -n 1 "$build.log")"
	# sid's index may be past its Valid-Until; its signatures are still checked.
	echo 'Acquire::Check-Valid-Until "false";' >"$build/etc/apt/apt.conf.d/99ceph-lab"
	# No daemon of a package starts inside the root on its own.
	printf '#!/bin/sh\nexit 101\n' >"$build/usr/sbin/policy-rc.d"
	chmod 755 "$build/usr/sbin/policy-rc.d"
	local dir='' root=$build
	{
		in_root apt-get update -q &&
			DEBIAN_FRONTEND=noninteractive in_root nice -n 10 apt-get install -y -q --no-install-recommends \
				"${tentacle_root_packages[@]}" &&
			in_root apt-get clean
	} >>"$build.log" 2>&1 || fail "installing Ceph in the root failed (log: $build.log): $(tail -n 1 "$build.log")"
	local version
	version=$(in_root dpkg-query -W -f "\${Version}" radosgw) || fail "no radosgw in the root"
	rm -rf --one-file-system "$rootfs"
	mv "$build" "$rootfs"
	mv "$build.log" "$rootfs.log"
	echo "radosgw $version, built $(date -u +%FT%TZ) in $((SECONDS - started)) s from $mirror" >"$rootfs/.ceph-lab-root"
	echo "$prog: Tentacle root in $rootfs: $(cat "$rootfs/.ceph-lab-root"), $(du -sh --one-file-system "$rootfs" | cut -f1)"
}

cmd_install() {
	if [ "$release" = tentacle ]; then
		cmd_install_tentacle
		return
	fi
	local missing=() p
	for p in "${packages[@]}"; do
		if ! dpkg-query -W -f '${Status}' "$p" 2>/dev/null | grep -q 'install ok installed'; then
			missing+=("$p")
		fi
	done
	if [ ${#missing[@]} -eq 0 ]; then
		echo "$prog: all packages installed"
		return 0
	fi
	[ "$(id -u)" = 0 ] || fail "install needs root (missing: ${missing[*]})"
	if ! apt-cache policy radosgw 2>/dev/null | grep -q 'Candidate: [0-9]'; then
		apt-get update -q
	fi
	echo "$prog: installing ${missing[*]}"
	DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "${missing[@]}"
}

# pid_of DIR NAME prints the PID of daemon NAME if it runs from DIR's config.
pid_of() {
	local dir=$1 name=$2 pid
	[ -f "$dir/run/$name.pid" ] || return 1
	pid=$(cat "$dir/run/$name.pid" 2>/dev/null) || return 1
	[ -n "$pid" ] && [ -r "/proc/$pid/cmdline" ] || return 1
	# A recycled PID belongs to someone else: the command line must name our config.
	tr '\0' ' ' <"/proc/$pid/cmdline" | grep -qF -- "$dir/ceph.conf" || return 1
	echo "$pid"
}

running_count() {
	local dir=$1 n=0 d
	for d in "${daemons[@]}"; do
		if pid_of "$dir" "$d" >/dev/null; then
			n=$((n + 1))
		fi
	done
	echo "$n"
}

# wait_for SECONDS DESCRIPTION COMMAND... retries COMMAND every 0.2 s.
wait_for() {
	local secs=$1 what=$2 i
	shift 2
	for ((i = 0; i < secs * 5; i++)); do
		if "$@" >/dev/null 2>&1; then
			return 0
		fi
		sleep 0.2
	done
	fail "timed out after ${secs}s waiting for $what (logs in $dir/log)"
}

write_conf() {
	local dir=$1 fsid=$2 debug=$3
	cat >"$dir/ceph.conf" <<CONF
[global]
fsid = $fsid
mon host = [v2:127.0.0.1:$mon_v2,v1:127.0.0.1:$mon_v1]
mon initial members = a
public network = 127.0.0.0/8
ms bind ipv4 = true
ms bind ipv6 = false
auth cluster required = none
auth service required = none
auth client required = none
auth allow insecure global id reclaim = true
keyring = $dir/keyring
run dir = $dir/run
pid file = $dir/run/\$name.pid
admin socket = $dir/run/\$name.asok
log file = $dir/log/\$name.log
log to stderr = false
err to stderr = false
osd pool default size = 1
osd pool default min size = 1
osd pool default pg num = 8
osd pool default pgp num = 8
osd pool default pg autoscale mode = off
osd crush chooseleaf type = 0
mon allow pool size one = true
mon allow pool delete = true
mon warn on pool no redundancy = false
mon data avail warn = 1
mon data avail crit = 0

[mon]
mon data = $dir/mon/\$cluster-\$id

[osd]
osd data = $dir/osd/\$cluster-\$id
osd objectstore = memstore
memstore device bytes = 2147483648
osd max object name len = 256
osd max object namespace len = 64
$osd_ports

[client.rgw.lab]
rgw data = $dir/rgw
# radosgw defaults to secure-only mon connections, which auth none cannot do.
ms mon client mode = crc secure
rgw frontends = $frontend, beast ssl_endpoint=127.0.0.1:$https_port ssl_certificate=$dir/tls/rgw.crt ssl_private_key=$dir/tls/rgw.key
debug rgw = $debug
CONF
}

write_env() {
	local dir=$1 access=$2 secret=$3
	cat >"$dir/lab.env" <<ENV
export CEPH_LAB_DIR='$dir'
export CEPH_LAB_CONF='$dir/ceph.conf'
export CEPH_LAB_RELEASE='$release'
export CEPH_LAB_ENDPOINT='http://127.0.0.1:$http_port'
export CEPH_LAB_TLS_ENDPOINT='https://127.0.0.1:$https_port'
export CEPH_LAB_RGW_LOG='$dir/log/client.rgw.lab.log'
export CEPH_LAB_USER='lab'
export AWS_ACCESS_KEY_ID='$access'
export AWS_SECRET_ACCESS_KEY='$secret'
export AWS_DEFAULT_REGION='default'
ENV
}

rgw_answers() {
	curl -fsS -o /dev/null "http://127.0.0.1:$http_port/" &&
		curl -fsS -k -o /dev/null "https://127.0.0.1:$https_port/"
}

osd_up() {
	in_root ceph -c "$dir/ceph.conf" --connect-timeout 5 osd dump 2>/dev/null | grep -q '^osd.0 up'
}

cmd_start() {
	local dir=$1 debug=$2
	mkdir -p "$dir"
	dir=$(cd "$dir" && pwd)
	local n
	n=$(running_count "$dir")
	if [ "$n" = "${#daemons[@]}" ] && [ -f "$dir/lab.env" ]; then
		echo "$prog: lab in $dir already runs" >&2
		cat "$dir/lab.env"
		return 0
	fi
	if [ "$n" != 0 ] || [ -e "$dir/ceph.conf" ]; then
		echo "$prog: rebuilding the lab in $dir (a memstore cluster cannot be restarted)" >&2
		local want=$release wantfs=$rootfs
		cmd_stop "$dir"
		rootfs=$wantfs
		use_release "$want"
		rm -rf "$dir/mon" "$dir/osd" "$dir/rgw" "$dir/run" "$dir/log" "$dir/tls" \
			"$dir/ceph.conf" "$dir/keyring" "$dir/monmap" "$dir/lab.env" "$dir/release"
	fi
	local p
	for p in uuidgen openssl curl; do
		command -v "$p" >/dev/null || fail "$p is missing: run '$prog --release $release install' first"
	done
	if [ -n "$root" ]; then
		[ -f "$root/.ceph-lab-root" ] || fail "no $release root in $root: run '$prog --release $release install' first"
		[ "$(id -u)" = 0 ] || fail "$release runs chrooted: start needs root"
	fi
	for p in ceph-mon ceph-osd radosgw radosgw-admin ceph monmaptool; do
		if [ -n "$root" ]; then
			[ -x "$root/usr/bin/$p" ] || fail "$p is missing in $root: run '$prog --release $release install' again"
		else
			command -v "$p" >/dev/null || fail "$p is missing: run '$prog install' first"
		fi
	done
	# stop, status, env and run find the release here, however far start gets.
	printf '%s\n%s\n' "$release" "$rootfs" >"$dir/release"
	mkdir -p "$dir/mon/ceph-a" "$dir/osd/ceph-0" "$dir/rgw" "$dir/run" "$dir/log" "$dir/tls"
	local fsid
	fsid=$(uuidgen)
	write_conf "$dir" "$fsid" "$debug"
	: >"$dir/keyring"
	local c=(-c "$dir/ceph.conf")

	openssl req -x509 -newkey rsa:2048 -nodes -days 30 -subj /CN=127.0.0.1 \
		-addext subjectAltName=IP:127.0.0.1 \
		-keyout "$dir/tls/rgw.key" -out "$dir/tls/rgw.crt" >/dev/null 2>&1 ||
		fail "openssl could not make the RGW certificate"

	in_root monmaptool --create --fsid "$fsid" --addv a "[v2:127.0.0.1:$mon_v2,v1:127.0.0.1:$mon_v1]" \
		"$dir/monmap" >/dev/null
	in_root ceph-mon "${c[@]}" --mkfs -i a --monmap "$dir/monmap" >"$dir/log/mkfs.log" 2>&1 ||
		fail "ceph-mon --mkfs failed: $dir/log/mkfs.log"
	in_root ceph-mon "${c[@]}" -i a
	wait_for 30 "the monitor" in_root ceph "${c[@]}" --connect-timeout 5 mon stat

	local uuid
	uuid=$(uuidgen)
	in_root ceph "${c[@]}" osd new "$uuid" >/dev/null
	in_root ceph-osd "${c[@]}" -i 0 --mkfs --osd-uuid "$uuid" >>"$dir/log/mkfs.log" 2>&1 ||
		fail "ceph-osd --mkfs failed: $dir/log/mkfs.log"
	in_root ceph-osd "${c[@]}" -i 0
	wait_for 60 "the OSD" osd_up

	in_root radosgw "${c[@]}" -n client.rgw.lab
	wait_for 90 "radosgw" rgw_answers

	local access secret
	access=$(head -c 10 /dev/urandom | od -An -tx1 | tr -d ' \n' | tr a-f A-F)
	secret=$(head -c 20 /dev/urandom | od -An -tx1 | tr -d ' \n')
	in_root radosgw-admin "${c[@]}" user create --uid=lab --display-name="ceph-lab user" \
		--access-key="$access" --secret-key="$secret" >/dev/null ||
		fail "radosgw-admin user create failed"
	write_env "$dir" "$access" "$secret"
	cat "$dir/lab.env"
}

cmd_stop() {
	local dir=$1 d pid pids=() killed=()
	[ -d "$dir" ] || return 0
	dir=$(cd "$dir" && pwd)
	load_release "$dir"
	for d in "${daemons[@]}"; do
		if pid=$(pid_of "$dir" "$d"); then
			pids+=("$pid")
			# Tentacle's radosgw waits forever on SIGTERM.
			if [ "$release" = tentacle ] && [ "$d" = client.rgw.lab ]; then
				killed+=("$pid")
			fi
		fi
	done
	if [ ${#pids[@]} -eq 0 ]; then
		drop_mount_point
		return 0
	fi
	if [ ${#killed[@]} -gt 0 ]; then
		kill -KILL "${killed[@]}" 2>/dev/null || true
	fi
	kill -TERM "${pids[@]}" 2>/dev/null || true
	local i alive
	for ((i = 0; i < 50; i++)); do
		alive=()
		for pid in "${pids[@]}"; do
			if kill -0 "$pid" 2>/dev/null; then
				alive+=("$pid")
			fi
		done
		[ ${#alive[@]} -eq 0 ] && break
		sleep 0.2
	done
	if [ ${#alive[@]} -gt 0 ]; then
		kill -KILL "${alive[@]}" 2>/dev/null || true
		for ((i = 0; i < 25; i++)); do
			kill -0 "${alive[@]}" 2>/dev/null || break
			sleep 0.2
		done
	fi
	drop_mount_point
	echo "$prog: stopped ${pids[*]}" >&2
}

# load_release switches to the release DIR's lab was started with.
load_release() {
	local f=$1/release r
	[ -f "$f" ] || return 0
	r=$(sed -n 1p "$f")
	rootfs=$(sed -n 2p "$f")
	use_release "$r"
}

cmd_status() {
	local dir=$1 d pid rc=0
	[ -d "$dir" ] || fail "no lab in $dir"
	dir=$(cd "$dir" && pwd)
	load_release "$dir"
	echo "release $release${root:+ (root $root)}"
	for d in "${daemons[@]}"; do
		if pid=$(pid_of "$dir" "$d"); then
			echo "$d running (pid $pid)"
		else
			echo "$d stopped"
			rc=1
		fi
	done
	if [ "$rc" = 0 ]; then
		in_root ceph -c "$dir/ceph.conf" --connect-timeout 5 health || rc=1
	fi
	return "$rc"
}

cmd_env() {
	local dir=$1
	[ -f "$dir/lab.env" ] || fail "no lab.env in $dir (run '$prog start $dir')"
	cat "$dir/lab.env"
}

cmd_run() {
	local dir=$1
	shift
	[ -f "$dir/ceph.conf" ] || fail "no lab in $dir (run '$prog start $dir')"
	dir=$(cd "$dir" && pwd)
	load_release "$dir"
	in_root "$@"
}

debug=${CEPH_LAB_DEBUG_RGW:-1}
release=${CEPH_LAB_RELEASE:-pacific}
rootfs=${CEPH_LAB_ROOTFS:-/var/tmp/ceph-lab-tentacle}
while [ $# -gt 0 ]; do
	case "$1" in
	-h | --help)
		usage
		exit 0
		;;
	--release)
		[ $# -ge 2 ] || die "--release needs a name"
		release=$2
		shift 2
		;;
	--release=*)
		release=${1#*=}
		shift
		;;
	--debug-rgw)
		[ $# -ge 2 ] || die "--debug-rgw needs a level"
		debug=$2
		shift 2
		;;
	--debug-rgw=*)
		debug=${1#*=}
		shift
		;;
	-*) die "unknown option $1 (see --help)" ;;
	*) break ;;
	esac
done
[[ "$debug" =~ ^[0-9]+$ ]] || die "--debug-rgw wants a number, not $debug"
case "$rootfs" in
/*) ;;
*) die "CEPH_LAB_ROOTFS must be an absolute path, not $rootfs" ;;
esac
use_release "$release"
[ $# -ge 1 ] || {
	usage >&2
	exit 2
}
command=$1
shift
case "$command" in
install)
	[ $# -eq 0 ] || die "install takes no arguments"
	cmd_install
	;;
run)
	[ $# -ge 2 ] || die "run takes DIR and a command"
	[ -n "$1" ] || die "DIR is empty"
	cmd_run "$@"
	;;
start | stop | status | env)
	[ $# -eq 1 ] || die "$command takes one argument: DIR"
	[ -n "$1" ] || die "DIR is empty"
	"cmd_$command" "$1" "$debug"
	;;
*) die "unknown command $command (see --help)" ;;
esac
