#!/usr/bin/env bash
# A throwaway single-node Kubernetes with Knative Serving and Eventing on
# this machine, for the e2e/knative tests and for people who want to see
# rgw-nats behind Knative's activator and queue-proxy. Every process it
# starts, every file it writes (but the few paths the kubelet and containerd
# hard-code) lives under one directory; stop kills only the PIDs recorded
# there and undoes what start did to the host. Run with --help.
set -euo pipefail

prog=${0##*/}
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
root=$(cd "$here/.." && pwd)
labsrc=$here/knative-lab

usage() {
	cat <<USAGE
Usage: $prog install [TARGET...]
       $prog start DIR
       $prog stop DIR
       $prog status DIR
       $prog env DIR
       $prog image DIR
       $prog oidc DIR on|off

One Kubernetes v1.34 node (etcd, kube-apiserver, kube-controller-manager,
kube-scheduler, kubelet, kube-proxy, containerd, CoreDNS) with Knative
Serving and Eventing ${knative_release}, Traefik as the Knative ingress,
NATS with JetStream in the cluster, and a registry on 127.0.0.1 that
containerd pulls every image from. Everything runs as processes under DIR,
no systemd. Needs root.

Commands:
  install      apt-get install what is missing (${packages[*]}),
               then build with the Go toolchain into the cache (see below):
               Kubernetes v1.34.3, etcd, CoreDNS, crictl, registry, NATS
               server, pause and the image builder from the module proxy;
               Knative Serving, Eventing and Traefik from their sources.
               Builds whose inputs did not change are skipped. TARGETs
               (default all): ${install_targets[*]}
  start DIR    create the node in DIR from scratch and start it, push the
               images, apply Knative, wait until it is ready, write
               DIR/lab.env and print it (a running lab is left alone)
  stop DIR     stop everything DIR records and undo the host changes:
               bridges, routes, iptables rules and chains, conntrack
               entries, sysctls the kubelet sets, mounts, cgroups, and the
               paths the kubelet and containerd hard-code (only those that
               were not there before start)
  status DIR   which processes run, the node, the Knative deployments, and
               the pod egress DROP rule as iptables lists it
  env DIR      print DIR/lab.env: export lines for KNATIVE_LAB_DIR,
               KUBECONFIG, KNATIVE_LAB_KUBECTL, KNATIVE_LAB_BIN,
               KNATIVE_LAB_REGISTRY, KNATIVE_LAB_INGRESS(_BRIDGE, _LOCAL),
               KNATIVE_LAB_DOMAIN, KNATIVE_LAB_NODE_IP (= _HOST_IP), KNATIVE_LAB_NATS_URL
               (from pods), KNATIVE_LAB_NATS_HOST_URL (from the host),
               KNATIVE_LAB_EVENTING, KNATIVE_LAB_EVENT_DISPLAY_IMAGE
  image DIR    build rgw-nats from this work tree (scripts/build.sh) into
               an image laid out as the Dockerfile's, push it to the lab
               registry, print the reference (REF:TAG@DIGEST)
  oidc DIR on|off
               switch Knative Eventing's authentication-oidc feature (off
               also removes the EventPolicies Brokers made while it was on)

Addresses (all on 127.0.0.1 or on bridges the lab creates):
  lab bridge   ${lab_bridge} ${node_ip}/24: node IP, kube-apiserver
               https://${node_ip}:${apiserver_port}, cluster DNS ${node_ip}:53,
               kubelet :10250, NodePorts (NATS ${node_ip}:${nats_nodeport})
  pods         ${pod_bridge} ${pod_cidr}; services ${service_cidr}; pod
               traffic to the host's uplink is dropped (iptables FORWARD)
  ingress      Traefik http://127.0.0.1:${ingress_port} (send Host: <ksvc host>),
               also on ${node_ip}:${ingress_port} and, cluster-local,
               ${node_ip}:${ingress_local_port}; domain ${knative_domain}
  registry     127.0.0.1:${registry_port}
  etcd         127.0.0.1:${etcd_port}

Environment:
  KNATIVE_SERVING_SRC, KNATIVE_EVENTING_SRC, KNATIVE_PKG_SRC,
  KNATIVE_NETWORKING_SRC, KNATIVE_CACHING_SRC, KNATIVE_HACK_SRC, TRAEFIK_SRC
               source trees for install; start applies Knative's config/
               from them, and takes the locations install recorded when
               they are unset: knative/serving at knative-v1.21.3,
               knative/eventing at knative-v1.21.x, and knative/pkg,
               networking, caching, hack at the commits those pin (the last
               12 hex digits of their go.mod pseudo-versions); traefik at
               v3.7.9. The module proxy does not serve current Knative.
  KNATIVE_LAB_CACHE
               where builds go (default \$XDG_CACHE_HOME or ~/.cache,
               then rgw-nats/knative-lab)
  KNATIVE_LAB_OIDC=1
               start with Eventing's authentication-oidc on
  KNATIVE_LAB_EVENTING=0
               start without Knative Eventing

Example:
  export KNATIVE_SERVING_SRC=/src/serving ... TRAEFIK_SRC=/src/traefik
  sudo -E $prog install
  sudo -E $prog start /tmp/klab && . /tmp/klab/lab.env
  kubectl get ksvc -A
  sudo $prog stop /tmp/klab
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

log() {
	printf '%s: %s\n' "$prog" "$*" >&2
}

packages=(containerd runc containernetworking-plugins iptables openssl conntrack curl)

k8s_version=v1.34.3
knative_release=v1.21
traefik_version=v3.7.9

# Addresses and ports. Nothing here clashes with the Ceph labs (3300, 6789,
# 8000, 8443, 13300, 16789, 17000-17100, 17443, 17480) or 4222/8080.
lab_bridge=klab0
node_ip=10.200.0.1
pod_bridge=klabcni0
pod_cidr=10.244.0.0/24
service_cidr=10.96.0.0/16
kubernetes_svc_ip=10.96.0.1
apiserver_port=16443
etcd_port=12379
etcd_peer_port=12380
registry_port=15000
ingress_port=18080
ingress_local_port=18081
traefik_ping_port=18082
nats_nodeport=30422
knative_domain=lab.test
node_name=klab
registry=127.0.0.1:$registry_port

cache=${KNATIVE_LAB_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/rgw-nats/knative-lab}
bin=$cache/bin

# The sysctls the kubelet, the CNI bridge plugin and kube-proxy change (or
# may: kube-proxy's conntrack settings are 0 here, "leave alone"); start
# records them, stop writes them back.
sysctls=(vm.overcommit_memory vm.panic_on_oom kernel.panic kernel.panic_on_oops
	kernel.keys.root_maxkeys kernel.keys.root_maxbytes net.ipv4.ip_forward
	net.ipv4.conf.all.route_localnet net.bridge.bridge-nf-call-iptables
	net.netfilter.nf_conntrack_max net.netfilter.nf_conntrack_tcp_timeout_established
	net.netfilter.nf_conntrack_tcp_timeout_close_wait net.netfilter.nf_conntrack_tcp_be_liberal)

# Paths the kubelet, containerd and go-cni use whatever they are told; stop
# removes those that did not exist before start: the first ones whole (only
# the lab writes there), the parents (others may use them) only when empty.
hardcoded_paths=(/var/lib/kubelet/device-plugins /var/log/containers /run/containerd/s /var/lib/cni/results)
hardcoded_parents=(/var/lib/kubelet /run/containerd /var/lib/cni /var/run/netns)

# Host processes in the order start starts them; stop goes backwards.
daemons=(registry etcd kube-apiserver kube-controller-manager kube-scheduler containerd kubelet kube-proxy coredns traefik)

need_root() {
	[ "$(id -u)" = 0 ] || fail "$1 needs root (bridges, iptables, containerd, the kubelet)"
}

need_dir() {
	[ -n "${1:-}" ] || die "missing DIR (see --help)"
	case "$1" in
	/*) dir=$1 ;;
	*) dir=$PWD/$1 ;;
	esac
	dir=${dir%/}
}

src_vars=(KNATIVE_SERVING_SRC KNATIVE_EVENTING_SRC KNATIVE_PKG_SRC KNATIVE_NETWORKING_SRC
	KNATIVE_CACHING_SRC KNATIVE_HACK_SRC TRAEFIK_SRC)

# start applies Knative's config/ from the sources install built: it reads
# their locations from the cache unless the variables name others.
default_srcs() {
	local v
	for v in "${src_vars[@]}"; do
		if [ -z "${!v:-}" ] && [ -f "$cache/sources.env" ]; then
			eval "$(grep "^export $v=" "$cache/sources.env")"
		fi
	done
}

# use_lab_bin: the commands after start use the binaries start used.
use_lab_bin() {
	if [ -f "$dir/bin-path" ]; then bin=$(cat "$dir/bin-path"); fi
}

need_src() {
	local v
	for v in "$@"; do
		[ -n "${!v:-}" ] || fail "$v is not set: point it at the source tree (see --help)"
		[ -f "${!v}/go.mod" ] || fail "$v=${!v} has no go.mod: point it at the source tree (see --help)"
	done
}

# ---------------------------------------------------------------- install

install_packages() {
	local missing=() p
	for p in "${packages[@]}"; do
		dpkg-query -W -f '${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
	done
	[ ${#missing[@]} -eq 0 ] && return 0
	log "apt-get install ${missing[*]}"
	if ! apt-cache policy "${missing[0]}" | grep -q 'Candidate: [0-9]'; then
		apt-get update -q >/dev/null
	fi
	# containerd's postinst would start a daemon under systemd only: there is none.
	DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "${missing[@]}" >/dev/null
}

# stamp_ok NAME KEY SRC...: the build NAME with inputs KEY was done, and no
# file under the SRC trees is newer than it.
stamp_ok() {
	local name=$1 key=$2 s
	shift 2
	s=$cache/stamps/$name
	[ -f "$s" ] && [ "$(cat "$s")" = "$key" ] || return 1
	for src in "$@"; do
		[ -z "$(find "$src" -newer "$s" -type f -print -quit)" ] || return 1
	done
}

stamp_set() {
	mkdir -p "$cache/stamps"
	printf '%s\n' "$2" >"$cache/stamps/$1"
}

# module_key DIR...: what a nested module's build depends on.
module_key() {
	{
		go version
		find "$@" -type f \( -name '*.go' -o -name go.mod -o -name go.sum \) -print0 | sort -z | xargs -0 sha256sum
	} | sha256sum | cut -c1-16
}

# build NAME KEY 'SRC...' CMD...: run CMD (logged to the cache) unless the stamp says it is done.
build() {
	local name=$1 key=$2 srcs=$3 t0
	shift 3
	# shellcheck disable=SC2086 # srcs is a list of paths without blanks
	if stamp_ok "$name" "$key" $srcs; then
		log "$name: up to date"
		return 0
	fi
	log "$name: building (log: $cache/log/$name.log)"
	mkdir -p "$cache/log"
	t0=$(date +%s)
	if ! "$@" >"$cache/log/$name.log" 2>&1; then
		tail -n 20 "$cache/log/$name.log" >&2
		fail "$name: build failed, see $cache/log/$name.log"
	fi
	log "$name: built in $(($(date +%s) - t0)) s"
	stamp_set "$name" "$key"
}

k8s_ldflags() {
	local p v=$k8s_version minor
	minor=${v#v1.}
	minor=${minor%%.*}
	printf -- '-s -w'
	for p in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
		printf -- ' -X %s.gitVersion=%s -X %s.gitMajor=1 -X %s.gitMinor=%s -X %s.gitTreeState=clean -X %s.gitCommit=0000000000000000000000000000000000000000 -X %s.buildDate=1970-01-01T00:00:00Z' \
			"$p" "$v" "$p" "$p" "$minor" "$p" "$p" "$p"
	done
}

# knative_modfile NAME SRC REPLACE...: a copy of SRC's go.mod in the cache
# with each knative.dev module replaced by its source tree, so the source
# tree is built as it is (without its vendor/) and never written to.
knative_modfile() {
	local name=$1 src=$2 mf args=()
	shift 2
	mf=$cache/mod/$name.mod
	mkdir -p "$cache/mod"
	cp "$src/go.mod" "$mf"
	cp "$src/go.sum" "${mf%.mod}.sum"
	while [ $# -gt 0 ]; do
		args+=(-replace "$1=$2")
		shift 2
	done
	go mod edit "${args[@]}" "$mf"
	printf '%s\n' "$mf"
}

serving_cmds=(controller webhook activator autoscaler queue)
eventing_cmds=(controller webhook mtping jobsink requestreply apiserver_receive_adapter auth_proxy
	broker/filter broker/ingress mtchannel_broker in_memory/channel_controller
	in_memory/channel_dispatcher event_display)

build_knative() {
	local name=$1 src=$2 mf key pkgs=() c
	shift 2
	local -n cmds=$1
	shift
	for c in "${cmds[@]}"; do pkgs+=("./cmd/$c"); done
	key=$( (
		go version
		echo "$src" "$*" "${cmds[*]}"
		cat "$src/go.mod"
	) | sha256sum | cut -c1-16)
	# The replaced trees are inputs too.
	local srcs="$src" i=2
	for ((i = 2; i <= $#; i += 2)); do srcs="$srcs ${!i}"; done
	mf=$(knative_modfile "$name" "$src" "$@")
	mkdir -p "$bin/$name"
	build "$name" "$key" "$srcs" env -C "$src" CGO_ENABLED=0 \
		go build -modfile="$mf" -mod=mod -trimpath -ldflags '-s -w' -o "$bin/$name/" "${pkgs[@]}"
}

install_targets=(kubernetes etcd coredns crictl tools serving eventing traefik)

cmd_install() {
	need_root install
	command -v go >/dev/null || fail "install needs the Go toolchain (go) on PATH"
	local t targets=("$@")
	[ ${#targets[@]} -gt 0 ] || targets=("${install_targets[@]}")
	for t in "${targets[@]}"; do
		case " ${install_targets[*]} " in
		*" $t "*) ;;
		*) die "install: unknown target $t (${install_targets[*]})" ;;
		esac
	done
	need_src KNATIVE_SERVING_SRC KNATIVE_EVENTING_SRC KNATIVE_PKG_SRC KNATIVE_NETWORKING_SRC \
		KNATIVE_CACHING_SRC KNATIVE_HACK_SRC TRAEFIK_SRC
	install_packages
	mkdir -p "$bin"
	local v
	for v in "${src_vars[@]}"; do printf 'export %s=%q\n' "$v" "$(cd "${!v}" && pwd)"; done >"$cache/sources.env"
	for t in "${targets[@]}"; do "install_$t"; done
	log "installed into $bin"
}

# Kubernetes first: the slowest, and the one everything else waits for.
install_kubernetes() {
	build kubernetes "$(module_key "$labsrc/k8s")-$k8s_version" "" \
		env -C "$labsrc/k8s" go build -trimpath -ldflags "$(k8s_ldflags)" -o "$bin/" ./cmd/...
}

install_etcd() {
	build etcd "$(module_key "$labsrc/etcd")" "" \
		env -C "$labsrc/etcd" go build -trimpath -ldflags '-s -w' -o "$bin/etcd" .
}

install_coredns() {
	build coredns "$(module_key "$labsrc/coredns")" "" \
		env -C "$labsrc/coredns" go build -trimpath -ldflags '-s -w' -o "$bin/coredns" github.com/coredns/coredns
}

install_crictl() {
	build crictl "$(module_key "$labsrc/crictl")" "" \
		env -C "$labsrc/crictl" go build -trimpath -ldflags '-s -w' -o "$bin/crictl" sigs.k8s.io/cri-tools/cmd/crictl
}

# Static: pause and nats-server go into images FROM scratch.
install_tools() {
	build tools "$(module_key "$labsrc/tools")" "" \
		env -C "$labsrc/tools" CGO_ENABLED=0 go build -trimpath -ldflags '-s -w' -o "$bin/" \
		./cmd/... github.com/distribution/distribution/v3/cmd/registry github.com/nats-io/nats-server/v2
}

install_serving() {
	build_knative serving "$KNATIVE_SERVING_SRC" serving_cmds \
		knative.dev/pkg "$KNATIVE_PKG_SRC" knative.dev/networking "$KNATIVE_NETWORKING_SRC" \
		knative.dev/caching "$KNATIVE_CACHING_SRC" knative.dev/hack "$KNATIVE_HACK_SRC"
}

install_eventing() {
	build_knative eventing "$KNATIVE_EVENTING_SRC" eventing_cmds \
		knative.dev/pkg "$KNATIVE_PKG_SRC" knative.dev/hack "$KNATIVE_HACK_SRC" \
		knative.dev/hack/schema "$KNATIVE_HACK_SRC/schema"
}

install_traefik() {
	build traefik "$( (
		go version
		echo "$TRAEFIK_SRC"
		cat "$TRAEFIK_SRC/go.mod"
	) | sha256sum | cut -c1-16)" "$TRAEFIK_SRC" \
		env -C "$TRAEFIK_SRC" CGO_ENABLED=0 go build -trimpath \
		-ldflags "-s -w -X github.com/traefik/traefik/v3/pkg/version.Version=$traefik_version" \
		-o "$bin/traefik" ./cmd/traefik
}

# ---------------------------------------------------------------- start

pidfile() { printf '%s/run/%s.pid\n' "$dir" "$1"; }

alive() {
	local f pid
	f=$(pidfile "$1")
	[ -f "$f" ] || return 1
	pid=$(cat "$f")
	[ -n "$pid" ] && kill -0 "$pid" 2>/dev/null
}

# spawn NAME CMD...: start CMD in its own session, output to DIR/log/NAME.log.
spawn() {
	local name=$1
	shift
	setsid "$@" >>"$dir/log/$name.log" 2>&1 </dev/null &
	echo $! >"$(pidfile "$name")"
}

# wait_for WHAT SECONDS CMD...: poll CMD once a second.
wait_for() {
	local what=$1 n=$2 i
	shift 2
	for ((i = 0; i < n; i++)); do
		"$@" >/dev/null 2>&1 && return 0
		sleep 1
	done
	fail "timed out after ${n}s waiting for $what (logs: $dir/log)"
}

kc() {
	"$bin/kubectl" --kubeconfig "$dir/pki/admin.kubeconfig" "$@"
}

uplink() {
	ip -4 route show default | awk '{for (i = 1; i < NF; i++) if ($i == "dev") { print $(i+1); exit }}'
}

record_host_state() {
	local f=$dir/host-state s p
	# A lab that was not stopped keeps what it recorded the first time.
	[ -f "$f" ] && return 0
	{
		for s in "${sysctls[@]}"; do
			[ -e "/proc/sys/${s//.//}" ] && printf 'sysctl %s %s\n' "$s" "$(cat "/proc/sys/${s//.//}")"
		done
		for p in "${hardcoded_paths[@]}"; do
			[ -e "$p" ] || printf 'absent %s\n' "$p"
		done
		for p in "${hardcoded_parents[@]}"; do
			[ -e "$p" ] || printf 'absent-dir %s\n' "$p"
		done
	} >"$f.tmp"
	mv "$f.tmp" "$f"
}

setup_network() {
	local up
	ip link show "$lab_bridge" >/dev/null 2>&1 || ip link add "$lab_bridge" type bridge
	ip addr replace "$node_ip/24" dev "$lab_bridge"
	ip link set "$lab_bridge" up
	# Service addresses route to the lab bridge, never to the uplink, even
	# for a moment before kube-proxy has written its rules.
	ip route replace "$service_cidr" dev "$lab_bridge"
	sysctl -qw net.ipv4.ip_forward=1
	iptables -N KLAB-FORWARD 2>/dev/null || iptables -F KLAB-FORWARD
	up=$(uplink)
	if [ -n "$up" ]; then
		iptables -A KLAB-FORWARD -s "$pod_cidr" -o "$up" -j DROP
	fi
	# Anything else pods send out of the host's other interfaces goes too.
	iptables -A KLAB-FORWARD -s "$pod_cidr" ! -o "$pod_bridge" -j DROP
	iptables -C FORWARD -j KLAB-FORWARD 2>/dev/null || iptables -I FORWARD 1 -j KLAB-FORWARD
}

make_pki() {
	local p=$dir/pki
	mkdir -p "$p"
	[ -f "$p/ca.crt" ] && return 0
	openssl_q() { openssl "$@" 2>/dev/null; }
	openssl_q req -x509 -newkey rsa:2048 -nodes -keyout "$p/ca.key" -out "$p/ca.crt" -days 3650 -subj "/CN=klab-ca"
	openssl_q req -x509 -newkey rsa:2048 -nodes -keyout "$p/front-proxy-ca.key" -out "$p/front-proxy-ca.crt" -days 3650 -subj "/CN=klab-front-proxy-ca"
	openssl_q genrsa -out "$p/sa.key" 2048
	openssl_q rsa -in "$p/sa.key" -pubout -out "$p/sa.pub"
	# cert NAME SUBJECT CA [SAN]
	cert() {
		local ext=$p/$1.ext
		printf 'basicConstraints=CA:FALSE\nkeyUsage=critical,digitalSignature,keyEncipherment\nextendedKeyUsage=%s\n' \
			"${4:+serverAuth,}clientAuth" >"$ext"
		[ -z "${4:-}" ] || printf 'subjectAltName=%s\n' "$4" >>"$ext"
		openssl_q req -newkey rsa:2048 -nodes -keyout "$p/$1.key" -out "$p/$1.csr" -subj "$2"
		openssl_q x509 -req -in "$p/$1.csr" -CA "$p/$3.crt" -CAkey "$p/$3.key" -CAcreateserial \
			-out "$p/$1.crt" -days 3650 -extfile "$ext"
		rm -f "$p/$1.csr" "$ext"
	}
	cert apiserver "/CN=kube-apiserver" ca \
		"IP:$node_ip,IP:127.0.0.1,IP:$kubernetes_svc_ip,DNS:kubernetes,DNS:kubernetes.default,DNS:kubernetes.default.svc,DNS:kubernetes.default.svc.cluster.local,DNS:$node_name"
	cert kubelet-serving "/CN=$node_name" ca "IP:$node_ip,DNS:$node_name"
	cert apiserver-kubelet-client "/O=system:masters/CN=kube-apiserver-kubelet-client" ca
	cert front-proxy-client "/CN=front-proxy-client" front-proxy-ca
	cert admin "/O=system:masters/CN=klab-admin" ca
	cert kubelet "/O=system:nodes/CN=system:node:$node_name" ca
	cert controller-manager "/CN=system:kube-controller-manager" ca
	cert scheduler "/CN=system:kube-scheduler" ca
	cert kube-proxy "/CN=system:kube-proxy" ca
	local who
	for who in admin kubelet controller-manager scheduler kube-proxy; do
		cat >"$p/$who.kubeconfig" <<EOF
apiVersion: v1
kind: Config
clusters:
- name: klab
  cluster:
    server: https://$node_ip:$apiserver_port
    certificate-authority: $p/ca.crt
users:
- name: $who
  user:
    client-certificate: $p/$who.crt
    client-key: $p/$who.key
contexts:
- name: klab
  context: {cluster: klab, user: $who}
current-context: klab
EOF
	done
	# Traefik's Knative provider takes a bearer token, not a client
	# certificate: a static token for a user bound below.
	printf '%s,traefik,traefik,\n' "$(openssl rand -hex 24)" >"$p/tokens.csv"
	chmod 600 "$p"/*.key "$p/tokens.csv"
}

start_registry() {
	cat >"$dir/etc/registry.yml" <<EOF
version: 0.1
log:
  level: warn
  accesslog: {disabled: true}
storage:
  filesystem: {rootdirectory: $dir/registry}
  delete: {enabled: true}
http:
  addr: 127.0.0.1:$registry_port
EOF
	spawn registry "$bin/registry" serve "$dir/etc/registry.yml"
	wait_for "the registry on $registry" 30 curl -fsS "http://$registry/v2/"
}

start_control_plane() {
	local p=$dir/pki
	spawn etcd "$bin/etcd" --name "$node_name" --data-dir "$dir/etcd" \
		--listen-client-urls "http://127.0.0.1:$etcd_port" --advertise-client-urls "http://127.0.0.1:$etcd_port" \
		--listen-peer-urls "http://127.0.0.1:$etcd_peer_port" --initial-advertise-peer-urls "http://127.0.0.1:$etcd_peer_port" \
		--initial-cluster "$node_name=http://127.0.0.1:$etcd_peer_port" --listen-metrics-urls "" \
		--quota-backend-bytes 2147483648 --log-level warn
	wait_for "etcd on 127.0.0.1:$etcd_port" 60 curl -fsS "http://127.0.0.1:$etcd_port/health"
	spawn kube-apiserver "$bin/kube-apiserver" \
		--etcd-servers "http://127.0.0.1:$etcd_port" \
		--bind-address "$node_ip" --advertise-address "$node_ip" --secure-port "$apiserver_port" \
		--service-cluster-ip-range "$service_cidr" --service-node-port-range 30000-32767 \
		--tls-cert-file "$p/apiserver.crt" --tls-private-key-file "$p/apiserver.key" \
		--client-ca-file "$p/ca.crt" --token-auth-file "$p/tokens.csv" \
		--service-account-issuer https://kubernetes.default.svc.cluster.local \
		--service-account-key-file "$p/sa.pub" --service-account-signing-key-file "$p/sa.key" \
		--kubelet-client-certificate "$p/apiserver-kubelet-client.crt" --kubelet-client-key "$p/apiserver-kubelet-client.key" \
		--kubelet-preferred-address-types InternalIP \
		--requestheader-client-ca-file "$p/front-proxy-ca.crt" --requestheader-allowed-names front-proxy-client \
		--requestheader-extra-headers-prefix X-Remote-Extra- --requestheader-group-headers X-Remote-Group \
		--requestheader-username-headers X-Remote-User \
		--proxy-client-cert-file "$p/front-proxy-client.crt" --proxy-client-key-file "$p/front-proxy-client.key" \
		--authorization-mode Node,RBAC --enable-admission-plugins NodeRestriction \
		--allow-privileged=true --profiling=false --v 1
	wait_for "kube-apiserver on $node_ip:$apiserver_port" 120 kc get --raw /readyz
	spawn kube-controller-manager "$bin/kube-controller-manager" \
		--kubeconfig "$p/controller-manager.kubeconfig" \
		--authentication-kubeconfig "$p/controller-manager.kubeconfig" \
		--authorization-kubeconfig "$p/controller-manager.kubeconfig" \
		--bind-address 127.0.0.1 --secure-port 10257 \
		--service-account-private-key-file "$p/sa.key" --root-ca-file "$p/ca.crt" \
		--cluster-signing-cert-file "$p/ca.crt" --cluster-signing-key-file "$p/ca.key" \
		--use-service-account-credentials=true --service-cluster-ip-range "$service_cidr" \
		--controllers '*,-nodeipam,-cloud-node-lifecycle,-service-lb-controller' --leader-elect=false --profiling=false
	spawn kube-scheduler "$bin/kube-scheduler" --kubeconfig "$p/scheduler.kubeconfig" \
		--authentication-kubeconfig "$p/scheduler.kubeconfig" --authorization-kubeconfig "$p/scheduler.kubeconfig" \
		--bind-address 127.0.0.1 --secure-port 10259 --leader-elect=false --profiling=false
}

start_node() {
	local p=$dir/pki
	mkdir -p "$dir/cni/net.d" "$dir/cni/networks" "$dir/kubelet/manifests" "$dir/kubelet/volume-plugins" "$dir/log/pods" "$dir/runc"
	cat >"$dir/cni/net.d/10-klab.conflist" <<EOF
{
  "cniVersion": "1.0.0",
  "name": "klab",
  "plugins": [
    {"type": "bridge", "bridge": "$pod_bridge", "isGateway": true, "ipMasq": false, "hairpinMode": true,
     "ipam": {"type": "host-local", "ranges": [[{"subnet": "$pod_cidr"}]], "routes": [{"dst": "0.0.0.0/0"}],
              "dataDir": "$dir/cni/networks"}},
    {"type": "portmap", "capabilities": {"portMappings": true}}
  ]
}
EOF
	cat >"$dir/etc/containerd.toml" <<EOF
version = 2
root = "$dir/containerd/root"
state = "$dir/containerd/state"
disabled_plugins = ["io.containerd.snapshotter.v1.aufs", "io.containerd.snapshotter.v1.btrfs", "io.containerd.snapshotter.v1.zfs", "io.containerd.snapshotter.v1.devmapper"]
[grpc]
  address = "$dir/run/containerd.sock"
[ttrpc]
  address = "$dir/run/containerd.sock.ttrpc"
[plugins."io.containerd.grpc.v1.cri"]
  sandbox_image = "$registry/pause:lab"
  restrict_oom_score_adj = true
  disable_apparmor = true
  [plugins."io.containerd.grpc.v1.cri".containerd]
    snapshotter = "overlayfs"
    default_runtime_name = "runc"
    [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]
      runtime_type = "io.containerd.runc.v2"
      [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc.options]
        SystemdCgroup = false
        Root = "$dir/runc"
  [plugins."io.containerd.grpc.v1.cri".cni]
    bin_dir = "/usr/lib/cni"
    conf_dir = "$dir/cni/net.d"
  [plugins."io.containerd.grpc.v1.cri".registry.mirrors."$registry"]
    endpoint = ["http://$registry"]
EOF
	spawn containerd containerd --config "$dir/etc/containerd.toml"
	wait_for "containerd" 60 "$bin/crictl" --runtime-endpoint "unix://$dir/run/containerd.sock" version
	# No upstream resolver: pods resolve cluster names only.
	: >"$dir/etc/resolv.conf"
	cat >"$dir/etc/kubelet.yaml" <<EOF
apiVersion: kubelet.config.k8s.io/v1beta1
kind: KubeletConfiguration
address: $node_ip
port: 10250
readOnlyPort: 0
healthzBindAddress: 127.0.0.1
healthzPort: 10248
authentication:
  anonymous: {enabled: false}
  webhook: {enabled: true}
  x509: {clientCAFile: $p/ca.crt}
authorization: {mode: Webhook}
tlsCertFile: $p/kubelet-serving.crt
tlsPrivateKeyFile: $p/kubelet-serving.key
cgroupDriver: cgroupfs
cgroupRoot: /klab
failSwapOn: false
failCgroupV1: false
containerRuntimeEndpoint: unix://$dir/run/containerd.sock
staticPodPath: $dir/kubelet/manifests
podLogsDir: $dir/log/pods
resolvConf: $dir/etc/resolv.conf
volumePluginDir: $dir/kubelet/volume-plugins
clusterDNS: [$node_ip]
clusterDomain: cluster.local
serializeImagePulls: false
maxPods: 200
imageGCHighThresholdPercent: 100
imageGCLowThresholdPercent: 99
evictionHard: {memory.available: 100Mi, nodefs.available: 1%, imagefs.available: 1%, nodefs.inodesFree: 1%}
EOF
	# The kubelet creates its cgroup root in the hierarchies it uses, not in all.
	local c
	for c in /sys/fs/cgroup/*/; do
		[ -f "$c/cgroup.procs" ] && [ "${c%/}" != /sys/fs/cgroup/unified ] && mkdir -p "$c/klab"
	done
	spawn kubelet "$bin/kubelet" --config "$dir/etc/kubelet.yaml" --kubeconfig "$p/kubelet.kubeconfig" \
		--root-dir "$dir/kubelet" --cert-dir "$dir/kubelet/pki" \
		--hostname-override "$node_name" --node-ip "$node_ip" --v 1
	cat >"$dir/etc/kube-proxy.yaml" <<EOF
apiVersion: kubeproxy.config.k8s.io/v1alpha1
kind: KubeProxyConfiguration
clientConnection: {kubeconfig: $p/kube-proxy.kubeconfig}
hostnameOverride: $node_name
mode: iptables
clusterCIDR: $pod_cidr
bindAddress: $node_ip
healthzBindAddress: 127.0.0.1:10256
metricsBindAddress: 127.0.0.1:10249
nodePortAddresses: ["$node_ip/32"]
iptables: {localhostNodePorts: false, masqueradeAll: false}
conntrack: {maxPerCore: 0, min: 0, tcpEstablishedTimeout: 0s, tcpCloseWaitTimeout: 0s}
EOF
	spawn kube-proxy "$bin/kube-proxy" --config "$dir/etc/kube-proxy.yaml"
	cat >"$dir/etc/Corefile" <<EOF
cluster.local:53 in-addr.arpa:53 ip6.arpa:53 {
    bind $node_ip
    errors
    kubernetes cluster.local in-addr.arpa ip6.arpa {
        kubeconfig $p/admin.kubeconfig klab
        pods insecure
        fallthrough in-addr.arpa ip6.arpa
    }
    cache 5
}
EOF
	spawn coredns "$bin/coredns" -conf "$dir/etc/Corefile" -dns.port 53
	wait_for "node $node_name Ready" 180 node_ready
}

node_ready() {
	[ "$(kc get node "$node_name" -o jsonpath='{.status.conditions[?(@.type=="Ready")].status}' 2>/dev/null)" = True ]
}

# push NAME BIN...: push an image with the binaries to the lab registry and
# remember REF@DIGEST under DIR/images/NAME.
push() {
	local name=$1 ref args=() b
	shift
	for b in "$@"; do args+=(-bin "$b"); done
	ref=$("$bin/labimage" -ref "$registry/$name" "${args[@]}") || fail "pushing $name failed"
	mkdir -p "$(dirname "$dir/images/$name")"
	printf '%s\n' "$ref" >"$dir/images/$name"
}

image_ref() { cat "$dir/images/$1"; }

push_images() {
	local c n
	push pause:lab "pause=$bin/pause"
	push nats:lab "nats-server=$bin/nats-server"
	for c in "${serving_cmds[@]}"; do
		push "knative/serving/$c:$knative_release" "$c=$bin/serving/$c"
	done
	if [ "$eventing" = 1 ]; then
		for c in "${eventing_cmds[@]}"; do
			n=${c//\//-}
			n=${n//_/-}
			push "knative/eventing/$n:$knative_release" "${c##*/}=$bin/eventing/${c##*/}"
		done
	fi
}

# render SRC NAMESPACE-PREFIX DIR...: the YAML files under SRC/DIR (symlinks
# into vendor/ read from the pinned source trees), ko:// references replaced
# by the pushed images, HPAs left out.
render() {
	local src=$1 kind=$2 f t
	shift 2
	local sedf=$dir/images/$kind.sed c n
	: >"$sedf"
	if [ "$kind" = serving ]; then
		for c in "${serving_cmds[@]}"; do
			printf 's#ko://knative.dev/serving/cmd/%s\\b#%s#g\n' "$c" "$(image_ref "knative/serving/$c:$knative_release")" >>"$sedf"
		done
	else
		for c in "${eventing_cmds[@]}"; do
			n=${c//\//-}
			n=${n//_/-}
			printf 's#ko://knative.dev/eventing/cmd/%s\\b#%s#g\n' "$c" "$(image_ref "knative/eventing/$n:$knative_release")" >>"$sedf"
		done
	fi
	for d in "$@"; do
		while IFS= read -r f; do
			case "$f" in *hpa.yaml) continue ;; esac
			t=$f
			if [ -L "$f" ]; then
				t=$(readlink "$f")
				case "$t" in
				*vendor/knative.dev/networking/*) t=$KNATIVE_NETWORKING_SRC/${t#*vendor/knative.dev/networking/} ;;
				*vendor/knative.dev/caching/*) t=$KNATIVE_CACHING_SRC/${t#*vendor/knative.dev/caching/} ;;
				*vendor/knative.dev/pkg/*) t=$KNATIVE_PKG_SRC/${t#*vendor/knative.dev/pkg/} ;;
				*) t=$f ;;
				esac
			fi
			[ -f "$t" ] || fail "$f: cannot read $t"
			printf -- '---\n# %s\n' "${f#"$src"/}"
			cat "$t"
			printf '\n'
		done < <(find "$src/$d" \( -type f -o -type l \) -name '*.yaml' | LC_ALL=C sort)
	done | sed -f "$sedf"
}

# apply_manifests FILE: the CRDs first (until established), then the rest;
# kubectl maps every object of a file before it applies any.
apply_manifests() {
	local f=$1 i
	if grep -q 'ko://' "$f"; then
		fail "$f still names images to build: $(grep -o 'ko://[^" ]*' "$f" | sort -u | tr '\n' ' ')"
	fi
	awk -v crds="${f%.yaml}-crds.yaml" -v rest="${f%.yaml}-rest.yaml" '
		function flush() { if (doc != "") { print "---\n" doc > (crd ? crds : rest) }; doc = ""; crd = 0 }
		/^---/ { flush(); next }
		{ doc = doc $0 "\n" }
		/^kind: CustomResourceDefinition/ { crd = 1 }
		END { flush() }' "$f"
	kc apply --server-side --force-conflicts -f "${f%.yaml}-crds.yaml" >/dev/null
	kc wait --for condition=established --timeout 120s -f "${f%.yaml}-crds.yaml" >/dev/null
	for i in 1 2 3 4 5; do
		kc apply --server-side --force-conflicts -f "${f%.yaml}-rest.yaml" >"$dir/log/apply.log" 2>&1 && return 0
		sleep 5
	done
	cat "$dir/log/apply.log" >&2
	fail "applying $f failed"
}

patch_cm() { # NS NAME JSON
	local i
	for i in $(seq 1 30); do
		kc -n "$1" patch configmap "$2" --type merge -p "$3" >/dev/null 2>&1 && return 0
		sleep 2
	done
	kc -n "$1" patch configmap "$2" --type merge -p "$3"
}

apply_serving() {
	local f=$dir/manifests/serving-core.yaml
	mkdir -p "$dir/manifests"
	render "$KNATIVE_SERVING_SRC" serving config/core >"$f"
	apply_manifests "$f"
	kc -n knative-serving rollout status deploy/webhook --timeout 300s >/dev/null
	patch_cm knative-serving config-network '{"data":{"ingress-class":"traefik.ingress.networking.knative.dev"}}'
	patch_cm knative-serving config-domain "{\"data\":{\"$knative_domain\":\"\"}}"
	patch_cm knative-serving config-deployment "{\"data\":{\"registries-skipping-tag-resolving\":\"kind.local,ko.local,dev.local,$registry\"}}"
	local d
	for d in controller webhook activator autoscaler; do
		kc -n knative-serving rollout status "deploy/$d" --timeout 300s >/dev/null || fail "knative-serving/$d is not ready (kubectl -n knative-serving describe deploy/$d)"
	done
}

apply_eventing() {
	local f=$dir/manifests/eventing.yaml
	render "$KNATIVE_EVENTING_SRC" eventing config/core config/channels/in-memory-channel config/brokers/mt-channel-broker >"$f"
	apply_manifests "$f"
	local d
	for d in eventing-controller eventing-webhook imc-controller imc-dispatcher mt-broker-controller mt-broker-filter mt-broker-ingress; do
		kc -n knative-eventing rollout status "deploy/$d" --timeout 300s >/dev/null || fail "knative-eventing/$d is not ready (kubectl -n knative-eventing describe deploy/$d)"
	done
	if [ "${KNATIVE_LAB_OIDC:-0}" = 1 ]; then set_oidc on; fi
}

set_oidc() {
	local v=disabled
	[ "$1" = on ] && v=enabled
	patch_cm knative-eventing config-features "{\"data\":{\"authentication-oidc\":\"$v\"}}"
	[ "$1" = on ] && return 0
	# Eventing 1.21 leaves the EventPolicies a Broker made for its channel
	# while OIDC was on; off, they turn not Ready, so does the channel, and its
	# dispatcher keeps delivering to deleted Triggers. Remove those (never the
	# ones users made: they have no Broker owner).
	local ns name
	sleep 2
	kc get eventpolicies -A -o jsonpath='{range .items[?(@.metadata.ownerReferences[0].kind=="Broker")]}{.metadata.namespace}{" "}{.metadata.name}{"\n"}{end}' |
		while read -r ns name; do
			[ -n "$name" ] && kc -n "$ns" delete eventpolicy "$name" --ignore-not-found >/dev/null
		done
}

# The cluster-side objects the lab needs: Traefik's RBAC and the Services
# Knative points cluster-local names at (endpoints: Traefik on the host),
# NATS with JetStream, OIDC discovery readable without credentials.
install_lab_objects() {
	kc apply --server-side --force-conflicts -f - >/dev/null <<EOF
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRole
metadata: {name: klab-traefik}
rules:
- apiGroups: [""]
  resources: [services, endpoints, secrets, namespaces]
  verbs: [get, list, watch]
- apiGroups: [discovery.k8s.io]
  resources: [endpointslices]
  verbs: [get, list, watch]
- apiGroups: [networking.internal.knative.dev]
  resources: [ingresses]
  verbs: [get, list, watch]
- apiGroups: [networking.internal.knative.dev]
  resources: [ingresses/status]
  verbs: [update, patch]
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRoleBinding
metadata: {name: klab-traefik}
roleRef: {apiGroup: rbac.authorization.k8s.io, kind: ClusterRole, name: klab-traefik}
subjects:
- {apiGroup: rbac.authorization.k8s.io, kind: User, name: traefik}
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRoleBinding
metadata: {name: klab-oidc-discovery}
roleRef: {apiGroup: rbac.authorization.k8s.io, kind: ClusterRole, name: system:service-account-issuer-discovery}
subjects:
- {apiGroup: rbac.authorization.k8s.io, kind: Group, name: system:unauthenticated}
- {apiGroup: rbac.authorization.k8s.io, kind: Group, name: system:authenticated}
---
apiVersion: v1
kind: Namespace
metadata: {name: klab-ingress}
---
apiVersion: v1
kind: Service
metadata: {name: traefik-public, namespace: klab-ingress}
spec:
  ports: [{name: http, port: 80, targetPort: $ingress_port}]
---
apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata:
  name: traefik-public
  namespace: klab-ingress
  labels: {kubernetes.io/service-name: traefik-public}
addressType: IPv4
endpoints: [{addresses: [$node_ip]}]
ports: [{name: http, port: $ingress_port, protocol: TCP}]
---
apiVersion: v1
kind: Service
metadata: {name: traefik-private, namespace: klab-ingress}
spec:
  ports: [{name: http, port: 80, targetPort: $ingress_local_port}]
---
apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata:
  name: traefik-private
  namespace: klab-ingress
  labels: {kubernetes.io/service-name: traefik-private}
addressType: IPv4
endpoints: [{addresses: [$node_ip]}]
ports: [{name: http, port: $ingress_local_port, protocol: TCP}]
---
apiVersion: v1
kind: Namespace
metadata: {name: nats}
---
apiVersion: apps/v1
kind: Deployment
metadata: {name: nats, namespace: nats}
spec:
  replicas: 1
  selector: {matchLabels: {app: nats}}
  template:
    metadata: {labels: {app: nats}}
    spec:
      containers:
      - name: nats
        image: $(image_ref nats:lab)
        args: [--jetstream, --store_dir, /data, --port, "4222", --http_port, "8222"]
        ports: [{containerPort: 4222, name: client}, {containerPort: 8222, name: monitor}]
        readinessProbe:
          httpGet: {path: /healthz, port: 8222}
          periodSeconds: 2
        volumeMounts: [{name: data, mountPath: /data}]
        securityContext:
          runAsNonRoot: true
          allowPrivilegeEscalation: false
          capabilities: {drop: [ALL]}
      volumes: [{name: data, emptyDir: {}}]
---
apiVersion: v1
kind: Service
metadata: {name: nats, namespace: nats}
spec:
  selector: {app: nats}
  ports: [{name: client, port: 4222, targetPort: 4222}]
---
apiVersion: v1
kind: Service
metadata: {name: nats-host, namespace: nats}
spec:
  type: NodePort
  selector: {app: nats}
  ports: [{name: client, port: 4222, targetPort: 4222, nodePort: $nats_nodeport}]
EOF
}

start_traefik() {
	local token
	token=$(cut -d, -f1 "$dir/pki/tokens.csv")
	cat >"$dir/etc/traefik.yml" <<EOF
entryPoints:
  web: {address: "127.0.0.1:$ingress_port"}
  web-bridge: {address: "$node_ip:$ingress_port"}
  web-local: {address: "$node_ip:$ingress_local_port"}
  ping: {address: "127.0.0.1:$traefik_ping_port"}
ping: {entryPoint: ping}
experimental: {knative: true}
providers:
  knative:
    endpoint: https://$node_ip:$apiserver_port
    certAuthFilePath: $dir/pki/ca.crt
    token: $token
    publicEntrypoints: [web, web-bridge]
    publicService: {name: traefik-public, namespace: klab-ingress}
    privateEntrypoints: [web-local]
    privateService: {name: traefik-private, namespace: klab-ingress}
    throttleDuration: 1s
log: {level: INFO}
global: {checkNewVersion: false, sendAnonymousUsage: false}
EOF
	chmod 600 "$dir/etc/traefik.yml"
	spawn traefik "$bin/traefik" --configfile "$dir/etc/traefik.yml"
	wait_for "Traefik on 127.0.0.1:$traefik_ping_port" 60 curl -fsS "http://127.0.0.1:$traefik_ping_port/ping"
}

write_env() {
	cat >"$dir/lab.env.tmp" <<EOF
export KNATIVE_LAB_DIR=$dir
export KUBECONFIG=$dir/pki/admin.kubeconfig
export KNATIVE_LAB_KUBECTL=$bin/kubectl
export KNATIVE_LAB_BIN=$bin
export KNATIVE_LAB_REGISTRY=$registry
export KNATIVE_LAB_INGRESS=http://127.0.0.1:$ingress_port
export KNATIVE_LAB_INGRESS_BRIDGE=http://$node_ip:$ingress_port
export KNATIVE_LAB_INGRESS_LOCAL=http://$node_ip:$ingress_local_port
export KNATIVE_LAB_DOMAIN=$knative_domain
export KNATIVE_LAB_NODE_IP=$node_ip
export KNATIVE_LAB_HOST_IP=$node_ip
export KNATIVE_LAB_NATS_URL=nats://nats.nats.svc.cluster.local:4222
export KNATIVE_LAB_NATS_HOST_URL=nats://$node_ip:$nats_nodeport
export KNATIVE_LAB_EVENTING=$eventing
export KNATIVE_LAB_EVENT_DISPLAY_IMAGE=$([ "$eventing" = 1 ] && image_ref "knative/eventing/event-display:$knative_release")
EOF
	mv "$dir/lab.env.tmp" "$dir/lab.env"
}

cmd_start() {
	need_root start
	need_dir "${1:-}"
	default_srcs
	need_src KNATIVE_SERVING_SRC KNATIVE_NETWORKING_SRC KNATIVE_CACHING_SRC KNATIVE_PKG_SRC
	eventing=${KNATIVE_LAB_EVENTING:-1}
	[ "$eventing" = 0 ] || need_src KNATIVE_EVENTING_SRC
	local b
	for b in kube-apiserver kubelet kubectl etcd coredns crictl registry labimage pause nats-server traefik serving/activator; do
		[ -x "$bin/$b" ] || fail "$bin/$b is missing: run $prog install first"
	done
	[ "$eventing" = 0 ] || [ -x "$bin/eventing/controller" ] || fail "$bin/eventing/controller is missing: run $prog install first"
	if [ -f "$dir/lab.env" ] && alive kube-apiserver && alive kubelet && alive traefik; then
		log "already running in $dir"
		cat "$dir/lab.env"
		return 0
	fi
	if [ -d "$dir/run" ]; then
		log "a previous lab in $dir is not running: stopping what is left and starting anew"
		cmd_stop "$dir"
	fi
	if ip link show "$lab_bridge" >/dev/null 2>&1; then
		fail "bridge $lab_bridge exists: another lab runs on this machine (stop it first; one lab at a time)"
	fi
	local t0
	t0=$(date +%s)
	# Start from nothing; DIR is emptied, so it must be new, empty or a lab's.
	if [ -d "$dir" ] && [ ! -f "$dir/.knative-lab" ] && [ -n "$(ls -A "$dir")" ]; then
		fail "$dir is not empty and not a lab directory: give a new or empty DIR"
	fi
	mkdir -p "$dir"
	touch "$dir/.knative-lab"
	find "$dir" -mindepth 1 -maxdepth 1 ! -name .knative-lab -exec rm -rf {} +
	printf '%s\n' "$bin" >"$dir/bin-path"
	mkdir -p "$dir/run" "$dir/log" "$dir/etc" "$dir/registry" "$dir/images"
	record_host_state
	setup_network
	make_pki
	start_registry
	log "pushing images"
	push_images
	start_control_plane
	start_node
	log "node Ready after $(($(date +%s) - t0)) s"
	install_lab_objects
	start_traefik
	log "applying Knative Serving"
	apply_serving
	log "serving ready after $(($(date +%s) - t0)) s"
	if [ "$eventing" = 1 ]; then
		log "applying Knative Eventing"
		apply_eventing
		log "eventing ready after $(($(date +%s) - t0)) s"
	fi
	kc -n nats rollout status deploy/nats --timeout 120s >/dev/null
	write_env
	log "up in $(($(date +%s) - t0)) s"
	cat "$dir/lab.env"
}

# ---------------------------------------------------------------- stop

kill_recorded() {
	local name=$1 f pid i
	f=$(pidfile "$name")
	[ -f "$f" ] || return 0
	pid=$(cat "$f")
	if [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null; then
		kill -TERM "$pid" 2>/dev/null || true
		for ((i = 0; i < 50; i++)); do
			kill -0 "$pid" 2>/dev/null || break
			sleep 0.2
		done
		kill -KILL "$pid" 2>/dev/null || true
	fi
	rm -f "$f"
}

# The containerd shims outlive containerd: find ours by their socket path.
kill_shims() {
	local p
	for p in /proc/[0-9]*; do
		[ -r "$p/cmdline" ] || continue
		if tr '\0' ' ' <"$p/cmdline" 2>/dev/null | grep -q "^/usr/bin/containerd-shim.* -address $dir/run/containerd.sock"; then
			kill -KILL "${p#/proc/}" 2>/dev/null || true
		fi
	done
}

# delete_chains IPTABLES PATTERN: delete the rules that jump to chains
# matching PATTERN from every chain, then flush and delete those chains.
delete_chains() {
	local ipt=$1 pat=$2 table rule chains c
	command -v "$ipt" >/dev/null || return 0
	for table in filter nat mangle raw; do
		"$ipt" -t "$table" -S >/dev/null 2>&1 || continue
		"$ipt" -t "$table" -S | { grep -E "^-A [A-Z]+ .*-j ($pat)" || true; } | while IFS= read -r rule; do
			eval "\"$ipt\" -t $table ${rule/#-A/-D}" 2>/dev/null || true
		done
		chains=$("$ipt" -t "$table" -S | awk -v pat="^($pat)" '$1 == "-N" && $2 ~ pat {print $2}')
		for c in $chains; do "$ipt" -t "$table" -F "$c" 2>/dev/null || true; done
		for c in $chains; do "$ipt" -t "$table" -X "$c" 2>/dev/null || true; done
	done
}

unmount_under() {
	local m
	# Deepest first.
	awk '{print $5}' /proc/self/mountinfo | { grep -E "^($1)(/|$)" || true; } | sort -r | while IFS= read -r m; do
		umount -l "$m" 2>/dev/null || true
	done
}

cmd_stop() {
	need_root stop
	need_dir "${1:-}"
	[ -d "$dir" ] || fail "$dir does not exist"
	use_lab_bin
	local i
	# The kubelet first, or it starts the pods again; then the pods through
	# CRI, so their network namespaces, veths and mounts go; then the rest.
	kill_recorded kubelet
	if alive containerd; then
		timeout 120 "$bin/crictl" --runtime-endpoint "unix://$dir/run/containerd.sock" --timeout 60s rmp -fa >/dev/null 2>&1 || true
	fi
	kill_recorded containerd
	kill_shims
	for ((i = ${#daemons[@]} - 1; i >= 0; i--)); do
		kill_recorded "${daemons[$i]}"
	done
	# Processes left in the lab's cgroups (a shim's children, say).
	local c
	for c in /sys/fs/cgroup/*/klab; do
		[ -d "$c" ] || continue
		find "$c" -name cgroup.procs -exec cat {} + 2>/dev/null | sort -u | xargs -r kill -KILL 2>/dev/null || true
	done
	unmount_under "$dir"
	unmount_under "/run/netns/cni-[^/]*"
	rm -f /run/netns/cni-* 2>/dev/null || true
	for c in /sys/fs/cgroup/*/klab; do
		[ -d "$c" ] || continue
		find "$c" -depth -type d -exec rmdir {} + 2>/dev/null || true
	done
	delete_chains iptables 'KUBE-|CNI-|KLAB-'
	delete_chains ip6tables 'KUBE-|CNI-|KLAB-'
	if command -v conntrack >/dev/null; then
		for c in "$pod_cidr" "$service_cidr" "$node_ip/24"; do
			conntrack -D -s "$c" >/dev/null 2>&1 || true
			conntrack -D -d "$c" >/dev/null 2>&1 || true
		done
	fi
	ip link del "$pod_bridge" 2>/dev/null || true
	ip link del "$lab_bridge" 2>/dev/null || true
	if [ -f "$dir/host-state" ]; then
		local kind a b
		while read -r kind a b; do
			case "$kind" in
			sysctl) sysctl -qw "$a=$b" 2>/dev/null || log "could not restore $a=$b" ;;
			absent) if [ -e "$a" ]; then rm -rf "$a"; fi ;;
			absent-dir) if [ -d "$a" ]; then rmdir "$a" 2>/dev/null || log "left $a: not empty"; fi ;;
			esac
		done < <(grep '^sysctl ' "$dir/host-state" || true; grep '^absent ' "$dir/host-state" || true; grep '^absent-dir ' "$dir/host-state" || true)
		rm -f "$dir/host-state"
	fi
	rm -rf "$dir/run"
	log "stopped $dir"
}

# ---------------------------------------------------------------- the rest

cmd_status() {
	need_dir "${1:-}"
	use_lab_bin
	[ -d "$dir/run" ] || {
		echo "not running ($dir)"
		return 1
	}
	local d rc=0
	for d in "${daemons[@]}"; do
		if alive "$d"; then
			printf '%-24s running (pid %s)\n' "$d" "$(cat "$(pidfile "$d")")"
		else
			printf '%-24s NOT running\n' "$d"
			rc=1
		fi
	done
	echo
	kc get nodes -o wide 2>&1 || rc=1
	echo
	kc get deploy -A 2>&1 || rc=1
	echo
	echo "pod egress (iptables -S KLAB-FORWARD):"
	iptables -S KLAB-FORWARD 2>&1 || rc=1
	return $rc
}

cmd_env() {
	need_dir "${1:-}"
	[ -f "$dir/lab.env" ] || fail "$dir/lab.env does not exist: start the lab first"
	cat "$dir/lab.env"
}

cmd_image() {
	need_dir "${1:-}"
	use_lab_bin
	[ -f "$dir/lab.env" ] || fail "$dir/lab.env does not exist: start the lab first"
	alive registry || fail "the lab registry in $dir is not running"
	local out tag
	out=$(mktemp -d)
	# shellcheck disable=SC2064
	trap "rm -rf '$out'" EXIT
	"$root/scripts/build.sh" "$out/rgw-nats" >/dev/null
	tag=$(sha256sum "$out/rgw-nats" | cut -c1-12)
	# The Dockerfile's image: /rgw-nats serve as 65532:65532, the CA
	# certificates, LISTEN_ADDRESS on every address, a sticky /tmp.
	local ca=/etc/ssl/certs/ca-certificates.crt args=()
	[ -f "$ca" ] && args+=(-file "$ca=$ca")
	"$bin/labimage" -ref "$registry/rgw-nats:$tag" -file "/rgw-nats=$out/rgw-nats" "${args[@]}" \
		-entrypoint /rgw-nats -cmd serve -user 65532:65532 -env 'LISTEN_ADDRESS=[::]:8080'
}

cmd_oidc() {
	need_dir "${1:-}"
	use_lab_bin
	case "${2:-}" in
	on | off) ;;
	*) die "oidc DIR on|off" ;;
	esac
	[ -f "$dir/lab.env" ] || fail "$dir/lab.env does not exist: start the lab first"
	set_oidc "$2"
	kc -n knative-eventing get configmap config-features -o jsonpath='{.data.authentication-oidc}'
	echo
}

case "${1:-}" in
-h | --help | help)
	usage
	exit 0
	;;
install)
	shift
	cmd_install "$@"
	;;
start) cmd_start "${2:-}" ;;
stop) cmd_stop "${2:-}" ;;
status) cmd_status "${2:-}" ;;
env) cmd_env "${2:-}" ;;
image) cmd_image "${2:-}" ;;
oidc) cmd_oidc "${2:-}" "${3:-}" ;;
"")
	usage >&2
	exit 2
	;;
*) die "unknown command $1 (see --help)" ;;
esac
