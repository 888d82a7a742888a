#!/usr/bin/env bash
# Local ChatWarden stack: Kafka 4.1.x (KRaft, single node) + ClickHouse (Debian package),
# real servers on 127.0.0.1, no containers. Everything lives under <repo>/.stack/.
#
#   scripts/stack.sh up                      install what is missing, start both, create default topics
#   scripts/stack.sh down                    stop both (SIGTERM, wait, SIGKILL)
#   scripts/stack.sh status                  does each server answer? (exit 0 only if both do)
#   scripts/stack.sh env                     print export lines for the Go code / tests
#   scripts/stack.sh topic NAME [PARTITIONS] create a topic (idempotent, replication factor 1)
#   scripts/stack.sh topics                  list topics
#   scripts/stack.sh kafka-stop|kafka-start|ch-stop|ch-start   one server only, same data
#   scripts/stack.sh kafka-config DIR        write a Kafka server.properties (log in DIR/data) and log4j2 files
#                                            (CHATWARDEN_KAFKA_SSL_KEYSTORE/_TRUSTSTORE/_BROKER_PASSWORD: SASL_SSL)
#   scripts/stack.sh cluster-up              the local ClickHouse cluster: ZooKeeper + 2 shards x 2 replicas
#   scripts/stack.sh cluster-down            stop it (same data next time)
#   scripts/stack.sh cluster-status          does each of its servers answer? (exit 0 only if all do)
#   scripts/stack.sh cluster-env             print export lines for it (CHATWARDEN_CLUSTER_*)
#   scripts/stack.sh cluster-node-stop|cluster-node-start N   one of its ClickHouse servers (1-4)
#   scripts/stack.sh zk-stop|zk-start        its ZooKeeper only
#   scripts/stack.sh ch-config DIR           write a ClickHouse config.xml and users.xml under DIR
#                                            (CHATWARDEN_CH_TLS_CERT/KEY: TLS only; CHATWARDEN_CH_SOLE_USER
#                                            and _SHA256: that user alone), for internal/testsecure
#
# Ports (env):
#   CHATWARDEN_KAFKA_PORT            broker listener            (default 9092)
#   CHATWARDEN_KAFKA_CONTROLLER_PORT KRaft controller listener  (default 9093)
#   CHATWARDEN_CH_PORT               ClickHouse native protocol (default 9000)
#   CHATWARDEN_CH_HTTP_PORT          ClickHouse HTTP            (default 8123)
# Grafana's read-only ClickHouse user: CHATWARDEN_CH_GRAFANA_USER (grafana),
#   CHATWARDEN_CH_GRAFANA_PASSWORD (grafana-readonly); docs/security.md, "Grafana".
# ClickHouse: CHATWARDEN_CH_OLD_PARTS_LIFETIME (seconds a merged-away part stays on disk;
#   ClickHouse's default 480; the drills' small tmpfs uses 15).
# The cluster (docs/scaling.md) lives under CHATWARDEN_CLUSTER_DIR (<repo>/.stack-cluster):
#   CHATWARDEN_ZK_PORT                ZooKeeper client port                  (default 12181)
#   CHATWARDEN_CLUSTER_CH_PORT_BASE   node N: native BASE+N, interserver BASE+10+N (default 29000)
#   CHATWARDEN_CLUSTER_HTTP_PORT_BASE node N: HTTP BASE+N                    (default 28120)
#   CHATWARDEN_CLUSTER_NAME           the remote_servers name                (default chatwarden)
# Timeouts (seconds): CHATWARDEN_KAFKA_START_TIMEOUT (120), CHATWARDEN_CH_START_TIMEOUT (60),
#   CHATWARDEN_STOP_TIMEOUT (45).
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
STACK="${CHATWARDEN_STACK_DIR:-$ROOT/.stack}"

KAFKA_PORT="${CHATWARDEN_KAFKA_PORT:-9092}"
KAFKA_CONTROLLER_PORT="${CHATWARDEN_KAFKA_CONTROLLER_PORT:-9093}"
CH_PORT="${CHATWARDEN_CH_PORT:-9000}"
CH_HTTP_PORT="${CHATWARDEN_CH_HTTP_PORT:-8123}"
# Grafana's read-only ClickHouse user (docs/security.md, "Grafana").
CH_GRAFANA_USER="${CHATWARDEN_CH_GRAFANA_USER:-grafana}"
CH_GRAFANA_PASSWORD="${CHATWARDEN_CH_GRAFANA_PASSWORD:-grafana-readonly}"
CH_OLD_PARTS_LIFETIME="${CHATWARDEN_CH_OLD_PARTS_LIFETIME:-480}"
KAFKA_START_TIMEOUT="${CHATWARDEN_KAFKA_START_TIMEOUT:-120}"
CH_START_TIMEOUT="${CHATWARDEN_CH_START_TIMEOUT:-60}"
STOP_TIMEOUT="${CHATWARDEN_STOP_TIMEOUT:-45}"
KAFKA_HEAP_OPTS="${CHATWARDEN_KAFKA_HEAP_OPTS:--Xms1g -Xmx1g}"

# name:partitions
DEFAULT_TOPICS=("chatwarden.access.v1:4" "chatwarden.consent.v1:2" "chatwarden.deadletter.v1:2")

KDIR="$STACK/kafka"
KLIBS="$KDIR/libs"
KDATA="$KDIR/data"
KLOG="$KDIR/kafka.log"
KPID="$KDIR/kafka.pid"
KPOM="$ROOT/deploy/kafka/pom.xml"

CDIR="$STACK/clickhouse"
CLOGDIR="$CDIR/log"
CPID="$CDIR/clickhouse.pid"

# The embedded modern ClickHouse (26.x) used by the SQL conformance test.
CHDB_VERSION="${CHATWARDEN_CHDB_VERSION:-26.5.3}"
CHDB_DIR="$STACK/chdb"
CHDB_LIB="$CHDB_DIR/node_modules/@chdb/lib-linux-x64-gnu/libchdb.so"

# The local ClickHouse cluster: ZooKeeper and 4 ClickHouse servers (2 shards x
# 2 replicas), each with its own folder under $CLUSTER_DIR.
CLUSTER_DIR="${CHATWARDEN_CLUSTER_DIR:-$ROOT/.stack-cluster}"
CLUSTER_NAME="${CHATWARDEN_CLUSTER_NAME:-chatwarden}"
ZK_PORT="${CHATWARDEN_ZK_PORT:-12181}"
CLUSTER_CH_PORT_BASE="${CHATWARDEN_CLUSTER_CH_PORT_BASE:-29000}"
CLUSTER_HTTP_PORT_BASE="${CHATWARDEN_CLUSTER_HTTP_PORT_BASE:-28120}"
CLUSTER_SHARDS=2
CLUSTER_REPLICAS=2
ZKDIR="$CLUSTER_DIR/zookeeper"
ZKLIBS="$ZKDIR/libs"
ZKPID="$ZKDIR/zookeeper.pid"
ZKLOG="$ZKDIR/zookeeper.log"
ZKPOM="$ROOT/deploy/zookeeper/pom.xml"
# Set per node by cluster_node (empty: a single server, no replication).
CH_INTERSERVER_PORT=""
CH_CLUSTER_XML=""
CH_PROFILE_EXTRA=""
CH_LOAD_BALANCING=""

export PATH="$PATH:/usr/sbin:/sbin:/usr/local/bin"

log() { printf '[stack] %s\n' "$*" >&2; }
die() { printf '[stack] ERROR: %s\n' "$*" >&2; exit 1; }

# ---------------------------------------------------------------- helpers

as_root() {
	if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo "$@"; fi
}

APT_UPDATED=0
apt_install() {
	command -v apt-get >/dev/null || die "apt-get not found; install manually: $*"
	if [ "$APT_UPDATED" -eq 0 ]; then
		log "apt-get update"
		as_root env DEBIAN_FRONTEND=noninteractive apt-get update -qq >&2
		APT_UPDATED=1
	fi
	log "apt-get install $*"
	# Keep package postinst scripts from starting system services (e.g. the system
	# clickhouse-server on :9000), which would collide with ours.
	local policy=/usr/sbin/policy-rc.d created=0
	if [ ! -e "$policy" ]; then
		as_root sh -c "printf '#!/bin/sh\nexit 101\n' > $policy && chmod +x $policy"
		created=1
	fi
	local rc=0
	as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "$@" >&2 || rc=$?
	if [ "$created" -eq 1 ]; then as_root rm -f "$policy"; fi
	[ "$rc" -eq 0 ] || die "apt-get install $* failed (rc=$rc)"
}

# port_open PORT: is something accepting TCP connections on 127.0.0.1:PORT?
port_open() {
	(exec 3<>"/dev/tcp/127.0.0.1/$1") >/dev/null 2>&1
}

# pid_alive PIDFILE MARKER: pidfile names a live process whose cmdline contains MARKER.
pid_alive() {
	local pidfile=$1 marker=$2 pid
	[ -s "$pidfile" ] || return 1
	pid=$(cat "$pidfile")
	[[ "$pid" =~ ^[0-9]+$ ]] || return 1
	[ -r "/proc/$pid/cmdline" ] || return 1
	tr '\0' ' ' <"/proc/$pid/cmdline" | grep -qF -- "$marker"
}

# stop_pid NAME PIDFILE MARKER
stop_pid() {
	local name=$1 pidfile=$2 marker=$3 pid i
	if ! pid_alive "$pidfile" "$marker"; then
		rm -f "$pidfile"
		log "$name: not running"
		return 0
	fi
	pid=$(cat "$pidfile")
	log "$name: stopping pid $pid (SIGTERM)"
	kill -TERM "$pid" 2>/dev/null || true
	for ((i = 0; i < STOP_TIMEOUT * 5; i++)); do
		[ -d "/proc/$pid" ] || break
		# a zombie (already exited) counts as stopped
		if grep -q '^State:.*Z' "/proc/$pid/status" 2>/dev/null; then break; fi
		sleep 0.2
	done
	if [ -d "/proc/$pid" ] && ! grep -q '^State:.*Z' "/proc/$pid/status" 2>/dev/null; then
		log "$name: still alive after ${STOP_TIMEOUT}s, SIGKILL"
		kill -KILL "$pid" 2>/dev/null || true
		for ((i = 0; i < 50; i++)); do [ -d "/proc/$pid" ] || break; sleep 0.1; done
	fi
	rm -f "$pidfile"
	log "$name: stopped"
}

# start_bg PIDFILE LOGFILE CMD...: start CMD in its own session (survives the caller's
# process group being killed), stdout/stderr appended to LOGFILE, its pid in PIDFILE.
start_bg() {
	local pidfile=$1 logfile=$2
	shift 2
	rm -f "$pidfile"
	# shellcheck disable=SC2016
	# 9>&- : do not leak the stack.sh lock fd into the long-lived server.
	setsid bash -c 'echo $$ >"$0"; exec "$@"' "$pidfile" "$@" </dev/null >>"$logfile" 2>&1 9>&- &
	local i
	for ((i = 0; i < 50; i++)); do [ -s "$pidfile" ] && return 0; sleep 0.1; done
	die "could not start: $*"
}

# with_lock [DIR]: hold DIR/.lock (default the stack's) until the script exits.
with_lock() {
	local dir=${1:-$STACK}
	mkdir -p "$dir"
	exec 9>"$dir/.lock"
	if ! flock -w 300 9; then die "timed out waiting for $dir/.lock (another stack.sh running?)"; fi
}

# ---------------------------------------------------------------- java / kafka

JAVA="${JAVA:-}"
java_major() { "$1" -version 2>&1 | sed -n 's/.*version "\([0-9]*\).*/\1/p' | head -1; }

# find_java: set JAVA to a Java >= 17 (Kafka 4 brokers need 17+) without installing anything.
find_java() {
	if [ -n "$JAVA" ] && [ "$(java_major "$JAVA")" -ge 17 ] 2>/dev/null; then return 0; fi
	local cand
	for cand in java /usr/lib/jvm/java-17-openjdk-*/bin/java /usr/lib/jvm/java-21-openjdk-*/bin/java; do
		if command -v "$cand" >/dev/null 2>&1 && [ "$(java_major "$cand")" -ge 17 ] 2>/dev/null; then
			JAVA=$(command -v "$cand")
			return 0
		fi
	done
	JAVA=""
	return 1
}

ensure_java() {
	find_java && return 0
	apt_install openjdk-17-jre-headless
	find_java || die "no Java >= 17 available after installing openjdk-17-jre-headless"
}

ensure_kafka_libs() { maven_libs Kafka "$KPOM" "$KLIBS" 'kafka_2.13-*.jar'; }

# maven_libs NAME POM DIR GLOB: the runtime jars of POM in DIR, fetched with
# Maven once and again only when POM changes (its sha256 is kept in DIR);
# GLOB names the jar that must be there. One fetcher for Kafka and ZooKeeper.
maven_libs() {
	local name=$1 pom=$2 dir=$3 glob=$4
	[ -f "$pom" ] || die "missing $pom"
	local stamp="$dir/.pom.sha256" want
	want=$(sha256sum "$pom" | cut -d' ' -f1)
	# shellcheck disable=SC2086 # $glob is a pattern
	if compgen -G "$dir/"$glob >/dev/null && [ "$(cat "$stamp" 2>/dev/null)" = "$want" ]; then
		return 0
	fi
	command -v mvn >/dev/null || apt_install maven
	log "fetching $name jars with Maven into $dir"
	rm -rf "$dir.tmp"
	mkdir -p "$dir.tmp"
	# (Debian's mvn -q still emits bare ANSI resets; strip them and blank lines)
	mvn -q -B -Dstyle.color=never -f "$pom" dependency:copy-dependencies -DincludeScope=runtime \
		-DoutputDirectory="$dir.tmp" 2>&1 | sed 's/\x1b\[[0-9;]*m//g' | awk 'NF' >&2 ||
		die "mvn dependency:copy-dependencies failed"
	# shellcheck disable=SC2086
	compgen -G "$dir.tmp/"$glob >/dev/null || die "mvn did not produce $glob"
	echo "$want" >"$dir.tmp/.pom.sha256"
	rm -rf "$dir"
	mv "$dir.tmp" "$dir"
}

kafka_version() {
	local j
	j=$(compgen -G "$KLIBS/kafka_2.13-*.jar" | head -1) || true
	j=${j##*/kafka_2.13-}
	echo "${j%.jar}"
}

write_kafka_config() { write_kafka_files "$KDIR" "$KDATA"; }

# write_kafka_files DIR DATA: server.properties and the log4j2 files under
# DIR for a broker whose log lives in DATA: the stack's, the drills' and
# (with `stack.sh kafka-config DIR`) the encrypted-connection tests' broker
# (internal/testsecure), so the configuration is written in one place.
# CHATWARDEN_KAFKA_SSL_KEYSTORE (PEM key then certificate),
# CHATWARDEN_KAFKA_SSL_TRUSTSTORE (PEM CA) and
# CHATWARDEN_KAFKA_BROKER_PASSWORD make the client listener SASL_SSL with
# SCRAM-SHA-512 (the broker's own SCRAM user is "broker").
write_kafka_files() {
	local dir=$1 data=$2 listeners
	mkdir -p "$dir" "$data"
	if [ -n "${CHATWARDEN_KAFKA_SSL_KEYSTORE:-}" ]; then
		listeners="listeners=SASL_SSL://127.0.0.1:$KAFKA_PORT,CONTROLLER://127.0.0.1:$KAFKA_CONTROLLER_PORT
advertised.listeners=SASL_SSL://127.0.0.1:$KAFKA_PORT
controller.listener.names=CONTROLLER
listener.security.protocol.map=CONTROLLER:PLAINTEXT,SASL_SSL:SASL_SSL
inter.broker.listener.name=SASL_SSL
sasl.enabled.mechanisms=SCRAM-SHA-512
sasl.mechanism.inter.broker.protocol=SCRAM-SHA-512
listener.name.sasl_ssl.scram-sha-512.sasl.jaas.config=org.apache.kafka.common.security.scram.ScramLoginModule required username=\"broker\" password=\"${CHATWARDEN_KAFKA_BROKER_PASSWORD:?CHATWARDEN_KAFKA_BROKER_PASSWORD is required with CHATWARDEN_KAFKA_SSL_KEYSTORE}\";
ssl.keystore.type=PEM
ssl.keystore.location=$CHATWARDEN_KAFKA_SSL_KEYSTORE
ssl.truststore.type=PEM
ssl.truststore.location=${CHATWARDEN_KAFKA_SSL_TRUSTSTORE:?CHATWARDEN_KAFKA_SSL_TRUSTSTORE is required with CHATWARDEN_KAFKA_SSL_KEYSTORE}
ssl.client.auth=none
ssl.enabled.protocols=TLSv1.3,TLSv1.2
offsets.topic.num.partitions=4"
	else
		listeners="listeners=PLAINTEXT://127.0.0.1:$KAFKA_PORT,CONTROLLER://127.0.0.1:$KAFKA_CONTROLLER_PORT
advertised.listeners=PLAINTEXT://127.0.0.1:$KAFKA_PORT
controller.listener.names=CONTROLLER
inter.broker.listener.name=PLAINTEXT
listener.security.protocol.map=CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT"
	fi
	cat >"$dir/server.properties.new" <<EOF
# Generated by scripts/stack.sh - edits are overwritten.
process.roles=broker,controller
node.id=1
controller.quorum.voters=1@127.0.0.1:$KAFKA_CONTROLLER_PORT
$listeners
log.dirs=$data
auto.create.topics.enable=false
num.partitions=4
default.replication.factor=1
min.insync.replicas=1
offsets.topic.replication.factor=1
transaction.state.log.replication.factor=1
transaction.state.log.min.isr=1
share.coordinator.state.topic.replication.factor=1
share.coordinator.state.topic.min.isr=1
group.initial.rebalance.delay.ms=0
num.network.threads=2
num.io.threads=4
log.retention.hours=168
log.segment.bytes=1073741824
EOF
	mv "$dir/server.properties.new" "$dir/server.properties"

	cat >"$dir/log4j2.properties" <<'EOF'
# Broker logging: everything to stdout, which stack.sh appends to .stack/kafka/kafka.log
status = warn
appender.out.type = Console
appender.out.name = STDOUT
appender.out.layout.type = PatternLayout
appender.out.layout.pattern = [%d] %p %m (%c)%n
rootLogger.level = INFO
rootLogger.appenderRef.out.ref = STDOUT
logger.request.name = kafka.request.logger
logger.request.level = WARN
logger.zk.name = org.apache.zookeeper
logger.zk.level = WARN
EOF

	cat >"$dir/tools-log4j2.properties" <<'EOF'
# CLI tools (TopicCommand, StorageTool): warnings only, on stderr
status = warn
appender.err.type = Console
appender.err.name = STDERR
appender.err.target = SYSTEM_ERR
appender.err.layout.type = PatternLayout
appender.err.layout.pattern = [%d] %p %m (%c)%n
rootLogger.level = WARN
rootLogger.appenderRef.err.ref = STDERR
EOF
}

kafka_tool() {
	# kafka_tool MAINCLASS ARGS...
	local cls=$1
	shift
	"$JAVA" -Xmx256m -XX:+UseSerialGC -XX:TieredStopAtLevel=1 -Xshare:auto \
		-Dlog4j2.configurationFile="$KDIR/tools-log4j2.properties" \
		-cp "$KLIBS/*" "$cls" "$@"
}

kafka_format_if_needed() {
	if [ -f "$KDATA/meta.properties" ]; then return 0; fi
	local cid
	if [ -s "$KDIR/cluster.id" ]; then
		cid=$(cat "$KDIR/cluster.id")
	else
		cid=$(kafka_tool kafka.tools.StorageTool random-uuid | tail -1)
		echo "$cid" >"$KDIR/cluster.id"
	fi
	log "kafka: formatting storage $KDATA (cluster id $cid)"
	# Static quorum (controller.quorum.voters), so no --standalone: changing the controller
	# port later only needs a config change.
	kafka_tool kafka.tools.StorageTool format --ignore-formatted \
		--cluster-id "$cid" --config "$KDIR/server.properties" >>"$KLOG" 2>&1 ||
		{ tail -n 30 "$KLOG" >&2; die "kafka storage format failed (see $KLOG)"; }
}

kafka_running() { pid_alive "$KPID" "kafka.Kafka"; }

kafka_answers() {
	port_open "$KAFKA_PORT" || return 1
	kafka_tool org.apache.kafka.tools.TopicCommand --bootstrap-server "127.0.0.1:$KAFKA_PORT" \
		--list >/dev/null 2>&1
}

kafka_start() {
	if kafka_running; then
		log "kafka: already running (pid $(cat "$KPID")) on 127.0.0.1:$KAFKA_PORT"
		# still starting (e.g. another shell just launched it)? wait for it
		port_open "$KAFKA_PORT" || { ensure_java; kafka_wait; }
		return 0
	fi
	if port_open "$KAFKA_PORT"; then
		die "port 127.0.0.1:$KAFKA_PORT is in use by a process not managed by $KPID (set CHATWARDEN_KAFKA_PORT?)"
	fi
	if port_open "$KAFKA_CONTROLLER_PORT"; then
		die "controller port 127.0.0.1:$KAFKA_CONTROLLER_PORT is in use (set CHATWARDEN_KAFKA_CONTROLLER_PORT?)"
	fi
	ensure_java
	ensure_kafka_libs
	write_kafka_config
	kafka_format_if_needed
	log "kafka: starting $(kafka_version) on 127.0.0.1:$KAFKA_PORT (controller :$KAFKA_CONTROLLER_PORT), log $KLOG"
	echo "===== $(date -Is) stack.sh starting kafka =====" >>"$KLOG"
	# shellcheck disable=SC2086
	start_bg "$KPID" "$KLOG" "$JAVA" $KAFKA_HEAP_OPTS -server -XX:+UseG1GC -XX:MaxGCPauseMillis=20 \
		-XX:+ExitOnOutOfMemoryError -Djava.awt.headless=true \
		-Dlog4j2.configurationFile="$KDIR/log4j2.properties" -Dkafka.logs.dir="$KDIR" \
		-Dchatwarden.stack="$STACK" \
		-cp "$KLIBS/*" kafka.Kafka "$KDIR/server.properties"
	kafka_wait
}

kafka_wait() {
	wait_started kafka "$KAFKA_START_TIMEOUT" kafka_running kafka_answers "127.0.0.1:$KAFKA_PORT" "log: $KLOG" \
		tail -n 40 "$KLOG"
	log "kafka: up (pid $(cat "$KPID"))"
}

# wait_started NAME TIMEOUT RUNNING ANSWERS ADDR WHERE SHOW...: poll ANSWERS
# until it succeeds; when RUNNING fails (the process exited) or after
# TIMEOUT seconds, run SHOW (the end of its log) and die naming WHERE. One
# loop for Kafka, ClickHouse and ZooKeeper.
wait_started() {
	local name=$1 timeout=$2 running=$3 answers=$4 addr=$5 where=$6
	shift 6
	local deadline=$((SECONDS + timeout))
	while ((SECONDS < deadline)); do
		if ! "$running"; then
			"$@" >&2 2>/dev/null || true
			die "$name exited during startup ($where)"
		fi
		"$answers" && return 0
		sleep 0.5
	done
	"$@" >&2 2>/dev/null || true
	die "$name did not answer on $addr within ${timeout}s ($where)"
}

kafka_stop() { stop_pid kafka "$KPID" "kafka.Kafka"; }

kafka_topics_list() {
	kafka_tool org.apache.kafka.tools.TopicCommand --bootstrap-server "127.0.0.1:$KAFKA_PORT" --list
}

kafka_topic_create() {
	local name=$1 parts=${2:-4}
	[[ "$parts" =~ ^[0-9]+$ ]] || die "partitions must be a number: $parts"
	kafka_tool org.apache.kafka.tools.TopicCommand --bootstrap-server "127.0.0.1:$KAFKA_PORT" \
		--create --if-not-exists --topic "$name" --partitions "$parts" --replication-factor 1 2>&1 |
		grep -v "^WARNING: Due to limitations in metric names" >&2 || true
	# (TopicCommand's exit status is lost in the pipe; verify instead)
	kafka_topics_list | grep -qxF "$name" || die "kafka: topic $name was not created"
	log "kafka: topic $name ready"
}

ensure_default_topics() {
	local existing spec name parts
	ensure_java
	existing=$(kafka_topics_list) || die "kafka: cannot list topics on 127.0.0.1:$KAFKA_PORT (log: $KLOG)"
	for spec in "${DEFAULT_TOPICS[@]}"; do
		name=${spec%%:*}
		parts=${spec##*:}
		if grep -qxF "$name" <<<"$existing"; then continue; fi
		kafka_topic_create "$name" "$parts"
	done
}

# ---------------------------------------------------------------- clickhouse

CH_SERVER=""
CH_CLIENT=""

ensure_clickhouse() {
	CH_SERVER=$(command -v clickhouse-server || true)
	CH_CLIENT=$(command -v clickhouse-client || true)
	if [ -z "$CH_SERVER" ] || [ -z "$CH_CLIENT" ]; then
		apt_install clickhouse-server clickhouse-client
		CH_SERVER=$(command -v clickhouse-server || true)
		CH_CLIENT=$(command -v clickhouse-client || true)
	fi
	[ -n "$CH_SERVER" ] && [ -n "$CH_CLIENT" ] || die "clickhouse-server/clickhouse-client not found after install"
}

write_clickhouse_config() { write_clickhouse_files "$CDIR"; }

# write_clickhouse_files DIR: config.xml and users.xml for a server whose
# data, logs and configuration live under DIR: the stack's, the drills' and
# (with `stack.sh ch-config DIR`) the encrypted-connection tests' servers
# (internal/testsecure), so the configuration is written in one place.
# CHATWARDEN_CH_TLS_CERT and CHATWARDEN_CH_TLS_KEY (PEM files) make the
# native protocol over TLS on $CH_PORT the only listener.
# A node of the local cluster (cluster_node) also gets its interserver port
# (CH_INTERSERVER_PORT, replicas fetch parts through it) and CH_CLUSTER_XML
# (remote_servers, zookeeper, macros, distributed_ddl).
write_clickhouse_files() {
	local dir=$1 listeners interserver
	if [ -n "$CH_INTERSERVER_PORT" ]; then
		interserver="    <interserver_http_host>127.0.0.1</interserver_http_host>
    <interserver_http_port>$CH_INTERSERVER_PORT</interserver_http_port>
$CH_CLUSTER_XML"
	else
		interserver="    <!-- no interserver_http_port: no replication, nothing else listens -->"
	fi
	mkdir -p "$dir/data" "$dir/tmp" "$dir/user_files" "$dir/format_schemas" "$dir/log"
	if [ -n "${CHATWARDEN_CH_TLS_CERT:-}" ]; then
		listeners="    <!-- TLS only: no tcp_port and no http_port -->
    <tcp_port_secure>$CH_PORT</tcp_port_secure>
    <openSSL>
        <server>
            <certificateFile>$CHATWARDEN_CH_TLS_CERT</certificateFile>
            <privateKeyFile>${CHATWARDEN_CH_TLS_KEY:?CHATWARDEN_CH_TLS_KEY is required with CHATWARDEN_CH_TLS_CERT}</privateKeyFile>
            <verificationMode>none</verificationMode>
            <loadDefaultCAFile>false</loadDefaultCAFile>
            <cacheSessions>true</cacheSessions>
            <disableProtocols>sslv2,sslv3,tlsv1,tlsv1_1</disableProtocols>
            <preferServerCiphers>true</preferServerCiphers>
        </server>
    </openSSL>"
	else
		listeners="    <tcp_port>$CH_PORT</tcp_port>
    <http_port>$CH_HTTP_PORT</http_port>"
	fi
	cat >"$dir/config.xml" <<EOF
<?xml version="1.0"?>
<!-- Generated by scripts/stack.sh - edits are overwritten. ClickHouse 18.16 syntax. -->
<yandex>
    <logger>
        <level>information</level>
        <log>$dir/log/clickhouse-server.log</log>
        <errorlog>$dir/log/clickhouse-server.err.log</errorlog>
        <size>100M</size>
        <count>3</count>
        <console>0</console>
    </logger>
    <listen_host>127.0.0.1</listen_host>
$listeners
$interserver
    <max_connections>1024</max_connections>
    <keep_alive_timeout>3</keep_alive_timeout>
    <max_concurrent_queries>100</max_concurrent_queries>
    <uncompressed_cache_size>268435456</uncompressed_cache_size>
    <mark_cache_size>268435456</mark_cache_size>
    <path>$dir/data/</path>
    <tmp_path>$dir/tmp/</tmp_path>
    <user_files_path>$dir/user_files/</user_files_path>
    <format_schema_path>$dir/format_schemas/</format_schema_path>
    <users_config>$dir/users.xml</users_config>
    <default_profile>default</default_profile>
    <default_database>default</default_database>
    <timezone>UTC</timezone>
    <mlock_executable>false</mlock_executable>
    <builtin_dictionaries_reload_interval>3600</builtin_dictionaries_reload_interval>
    <max_session_timeout>3600</max_session_timeout>
    <default_session_timeout>60</default_session_timeout>
    <query_log>
        <database>system</database>
        <table>query_log</table>
        <partition_by>toYYYYMM(event_date)</partition_by>
        <flush_interval_milliseconds>7500</flush_interval_milliseconds>
    </query_log>
    <merge_tree>
        <old_parts_lifetime>$CH_OLD_PARTS_LIFETIME</old_parts_lifetime>
    </merge_tree>
    <max_table_size_to_drop>0</max_table_size_to_drop>
    <max_partition_size_to_drop>0</max_partition_size_to_drop>
</yandex>
EOF
	write_clickhouse_users "$dir/users.xml" || true
}

# write_clickhouse_users FILE: the users config; returns 0 when it changed
# FILE. Besides the service user (default), a read-only user for Grafana's
# dashboards (docs/security.md, "Grafana"): readonly=2 (no INSERT, ALTER,
# DROP or CREATE; settings may change, because the Grafana ClickHouse plugin
# sets max_execution_time on every query and 18.16 has no per-setting
# constraints), and only the chatwarden database (plus the fixed database of
# the dashboards' injection test). 18.16 cannot grant single tables; on
# ClickHouse 24+ use the GRANT form in docs/security.md.
write_clickhouse_users() {
	local file=$1 tmp users
	tmp=$(mktemp "$file.XXXXXX")
	if [ -n "${CHATWARDEN_CH_SOLE_USER:-}" ]; then
		# The encrypted-connection tests: one user with a SHA-256 password
		# and no default user.
		users="        <$CHATWARDEN_CH_SOLE_USER>
            <password_sha256_hex>${CHATWARDEN_CH_SOLE_USER_SHA256:?CHATWARDEN_CH_SOLE_USER_SHA256 is required with CHATWARDEN_CH_SOLE_USER}</password_sha256_hex>
            <networks>
                <ip>127.0.0.1</ip>
                <ip>::1</ip>
                <ip>::ffff:127.0.0.1</ip>
            </networks>
            <profile>default</profile>
            <quota>default</quota>
        </$CHATWARDEN_CH_SOLE_USER>"
	else
		users="        <default>
            <password></password>
            <networks>
                <ip>127.0.0.1</ip>
                <ip>::1</ip>
                <ip>::ffff:127.0.0.1</ip>
            </networks>
            <profile>default</profile>
            <quota>default</quota>
        </default>
        <$CH_GRAFANA_USER>
            <password_sha256_hex>$(printf '%s' "$CH_GRAFANA_PASSWORD" | sha256sum | cut -d' ' -f1)</password_sha256_hex>
            <networks>
                <ip>127.0.0.1</ip>
                <ip>::1</ip>
                <ip>::ffff:127.0.0.1</ip>
            </networks>
            <profile>grafana_readonly</profile>
            <quota>default</quota>
            <allow_databases>
                <database>chatwarden</database>
                <database>chatwarden_grafana_test</database>
            </allow_databases>
        </$CH_GRAFANA_USER>"
	fi
	cat >"$tmp" <<EOF
<?xml version="1.0"?>
<!-- Generated by scripts/stack.sh - edits are overwritten. -->
<yandex>
    <profiles>
        <default>
            <max_memory_usage>4000000000</max_memory_usage>
$CH_PROFILE_EXTRA            <use_uncompressed_cache>0</use_uncompressed_cache>
            <load_balancing>${CH_LOAD_BALANCING:-random}</load_balancing>
        </default>
        <grafana_readonly>
            <readonly>2</readonly>
            <max_memory_usage>2000000000</max_memory_usage>
            <max_execution_time>60</max_execution_time>
            <max_result_rows>100000</max_result_rows>
            <result_overflow_mode>break</result_overflow_mode>
        </grafana_readonly>
    </profiles>
    <users>
$users
    </users>
    <quotas>
        <default>
            <interval>
                <duration>3600</duration>
                <queries>0</queries>
                <errors>0</errors>
                <result_rows>0</result_rows>
                <read_rows>0</read_rows>
                <execution_time>0</execution_time>
            </interval>
        </default>
    </quotas>
</yandex>
EOF
	if cmp -s "$tmp" "$file"; then
		rm -f "$tmp"
		return 1
	fi
	mv "$tmp" "$file"
}

ch_running() { pid_alive "$CPID" "$CDIR/config.xml"; }

ch_query() {
	"${CH_CLIENT:-clickhouse-client}" --host 127.0.0.1 --port "$CH_PORT" -q "$1"
}

ch_answers() {
	port_open "$CH_PORT" || return 1
	ch_query 'SELECT version()' >/dev/null 2>&1
}

ch_start() {
	if ch_running; then
		log "clickhouse: already running (pid $(cat "$CPID")) on 127.0.0.1:$CH_PORT"
		ensure_clickhouse
		# A stack started by an older stack.sh gets the current users (the
		# Grafana read-only user); the server reloads users.xml by itself.
		if write_clickhouse_users "$CDIR/users.xml"; then
			log "clickhouse: users.xml updated; the server reloads it within seconds"
			ch_wait_user
		fi
		ch_answers || ch_wait
		return 0
	fi
	if port_open "$CH_PORT"; then
		die "port 127.0.0.1:$CH_PORT is in use by a process not managed by $CPID (system clickhouse-server service? set CHATWARDEN_CH_PORT?)"
	fi
	if port_open "$CH_HTTP_PORT"; then
		die "port 127.0.0.1:$CH_HTTP_PORT is in use (set CHATWARDEN_CH_HTTP_PORT?)"
	fi
	ensure_clickhouse
	write_clickhouse_config
	log "clickhouse: starting on 127.0.0.1:$CH_PORT (http :$CH_HTTP_PORT), logs $CLOGDIR/"
	echo "===== $(date -Is) stack.sh starting clickhouse =====" >>"$CLOGDIR/stdout.log"
	# Foreground mode (no --daemon) under setsid, so our pidfile is the server's pid.
	# Run from $CDIR: 18.16 writes preprocessed configs relative to the config file.
	(cd "$CDIR" && start_bg "$CPID" "$CLOGDIR/stdout.log" "$CH_SERVER" --config-file="$CDIR/config.xml")
	ch_wait
}

ch_wait() {
	wait_started clickhouse "$CH_START_TIMEOUT" ch_running ch_answers "127.0.0.1:$CH_PORT" "logs: $CLOGDIR/" \
		tail -n 20 "$CLOGDIR/stdout.log" "$CLOGDIR/clickhouse-server.err.log"
	log "clickhouse: up (pid $(cat "$CPID")), version $(ch_query 'SELECT version()')"
}

# ch_wait_user: wait until the Grafana read-only user can log in (after
# users.xml was rewritten on a running server).
ch_wait_user() {
	local i
	for ((i = 0; i < 60; i++)); do
		if "${CH_CLIENT:-clickhouse-client}" --host 127.0.0.1 --port "$CH_PORT" --user "$CH_GRAFANA_USER" \
			--password "$CH_GRAFANA_PASSWORD" -q 'SELECT 1' >/dev/null 2>&1; then
			return 0
		fi
		sleep 0.5
	done
	log "clickhouse: WARNING: user $CH_GRAFANA_USER cannot log in 30 s after users.xml changed (logs: $CLOGDIR/)"
}

ch_stop() { stop_pid clickhouse "$CPID" "$CDIR/config.xml"; }

# ---------------------------------------------------------------- chdb

# ensure_chdb installs libchdb.so (ClickHouse 26.x as a library) from the npm
# package @chdb/lib-linux-x64-gnu, for the modern-ClickHouse SQL tests.
ensure_chdb() {
	if [ -f "$CHDB_LIB" ] && [ "$(cat "$CHDB_DIR/.version" 2>/dev/null)" = "$CHDB_VERSION" ]; then
		return
	fi
	command -v npm >/dev/null || apt_install npm
	log "installing @chdb/lib-linux-x64-gnu@$CHDB_VERSION (libchdb.so, ClickHouse 26.x) into $CHDB_DIR"
	mkdir -p "$CHDB_DIR"
	npm install --no-audit --no-fund --loglevel=error --prefix "$CHDB_DIR" "@chdb/lib-linux-x64-gnu@$CHDB_VERSION" >&2 \
		|| die "npm install @chdb/lib-linux-x64-gnu@$CHDB_VERSION failed"
	[ -f "$CHDB_LIB" ] || die "libchdb.so not found at $CHDB_LIB after npm install"
	echo "$CHDB_VERSION" >"$CHDB_DIR/.version"
}


# ---------------------------------------------------------------- cluster

# The local ClickHouse cluster (docs/scaling.md): one ZooKeeper and
# CLUSTER_SHARDS x CLUSTER_REPLICAS ClickHouse servers on 127.0.0.1, each
# started like the single server (ch_start, write_clickhouse_files) with the
# cluster's settings added. Node N (1-based) is shard (N-1)/REPLICAS+1,
# replica (N-1)%REPLICAS+1; its macros are {shard} (01, 02), {replica}
# (n1..n4, unique in the whole cluster, so a table replicated on every node
# can use it too) and {cluster}.

cluster_nodes() { echo $((CLUSTER_SHARDS * CLUSTER_REPLICAS)); }

# cluster_node N: point the ClickHouse globals (CDIR, CPID, ports, cluster
# XML) at node N.
cluster_node() {
	local n=$1 shard
	[[ "$n" =~ ^[0-9]+$ ]] && [ "$n" -ge 1 ] && [ "$n" -le "$(cluster_nodes)" ] ||
		die "cluster node must be 1-$(cluster_nodes): $n"
	shard=$(((n - 1) / CLUSTER_REPLICAS + 1))
	CDIR="$CLUSTER_DIR/ch$n"
	CLOGDIR="$CDIR/log"
	CPID="$CDIR/clickhouse.pid"
	CH_PORT=$((CLUSTER_CH_PORT_BASE + n))
	CH_HTTP_PORT=$((CLUSTER_HTTP_PORT_BASE + n))
	CH_INTERSERVER_PORT=$((CLUSTER_CH_PORT_BASE + 10 + n))
	# A Distributed query reads each shard from its first live replica
	# (remote_servers order), the one a Distributed insert writes to: a
	# read right after an insert sees it, as on one server, while the
	# second replica may still be fetching the part (docs/scaling.md).
	CH_LOAD_BALANCING=in_order
	# Modest on a shared 2-core machine: fewer merge and fetch threads than
	# the defaults (16 each), replicated fetches included.
	CH_PROFILE_EXTRA="            <background_pool_size>4</background_pool_size>
            <background_schedule_pool_size>4</background_schedule_pool_size>
"
	CH_CLUSTER_XML="    <remote_servers>
        <$CLUSTER_NAME>
$(cluster_shards_xml)
        </$CLUSTER_NAME>
    </remote_servers>
    <zookeeper>
        <node><host>127.0.0.1</host><port>$ZK_PORT</port></node>
        <session_timeout_ms>30000</session_timeout_ms>
    </zookeeper>
    <macros>
        <cluster>$CLUSTER_NAME</cluster>
        <shard>$(printf '%02d' "$shard")</shard>
        <replica>n$n</replica>
    </macros>
    <distributed_ddl>
        <path>/clickhouse/task_queue/ddl</path>
    </distributed_ddl>"
}

# cluster_shards_xml: the <shard> elements of remote_servers. Every shard
# has internal_replication: an insert through a Distributed table goes to
# one replica, and ReplicatedMergeTree copies it to the others.
cluster_shards_xml() {
	local s r n
	for ((s = 1; s <= CLUSTER_SHARDS; s++)); do
		echo "            <shard>"
		echo "                <internal_replication>true</internal_replication>"
		for ((r = 1; r <= CLUSTER_REPLICAS; r++)); do
			n=$(((s - 1) * CLUSTER_REPLICAS + r))
			echo "                <replica><host>127.0.0.1</host><port>$((CLUSTER_CH_PORT_BASE + n))</port></replica>"
		done
		echo "            </shard>"
	done
}

cluster_addrs() {
	local n out=""
	for ((n = 1; n <= $(cluster_nodes); n++)); do
		out="$out${out:+,}127.0.0.1:$((CLUSTER_CH_PORT_BASE + n))"
	done
	echo "$out"
}

ensure_zookeeper_libs() { maven_libs ZooKeeper "$ZKPOM" "$ZKLIBS" 'zookeeper-3*.jar'; }

write_zookeeper_config() {
	mkdir -p "$ZKDIR/data"
	cat >"$ZKDIR/zoo.cfg" <<EOF
# Generated by scripts/stack.sh - edits are overwritten. Standalone ZooKeeper
# for the local ClickHouse cluster (one node: a test cluster, not a quorum).
tickTime=2000
initLimit=10
syncLimit=5
dataDir=$ZKDIR/data
clientPort=$ZK_PORT
clientPortAddress=127.0.0.1
maxClientCnxns=0
admin.enableServer=false
4lw.commands.whitelist=ruok,srvr,mntr
autopurge.snapRetainCount=3
autopurge.purgeInterval=1
EOF
}

zk_running() { pid_alive "$ZKPID" "$ZKDIR/zoo.cfg"; }

# zk_answers: the four-letter "srvr" names the server's mode (a server that
# accepts connections but does not serve says so instead; "ruok" answers
# "imok" even then).
zk_answers() {
	port_open "$ZK_PORT" || return 1
	local reply
	reply=$(exec 3<>"/dev/tcp/127.0.0.1/$ZK_PORT" && printf srvr >&3 && timeout 3 cat <&3) 2>/dev/null || return 1
	grep -q '^Mode: ' <<<"$reply"
}

zk_start() {
	if zk_running; then
		log "zookeeper: already running (pid $(cat "$ZKPID")) on 127.0.0.1:$ZK_PORT"
		zk_answers || zk_wait
		return 0
	fi
	if port_open "$ZK_PORT"; then die "port 127.0.0.1:$ZK_PORT is in use (set CHATWARDEN_ZK_PORT?)"; fi
	ensure_java
	ensure_zookeeper_libs
	write_zookeeper_config
	log "zookeeper: starting on 127.0.0.1:$ZK_PORT, log $ZKLOG"
	echo "===== $(date -Is) stack.sh starting zookeeper =====" >>"$ZKLOG"
	start_bg "$ZKPID" "$ZKLOG" "$JAVA" -Xms64m -Xmx256m -XX:+UseSerialGC -XX:+ExitOnOutOfMemoryError \
		-Djava.awt.headless=true -Dorg.slf4j.simpleLogger.defaultLogLevel=warn \
		-Dorg.slf4j.simpleLogger.showDateTime=true -Dzookeeper.admin.enableServer=false \
		-cp "$ZKLIBS/*" org.apache.zookeeper.server.quorum.QuorumPeerMain "$ZKDIR/zoo.cfg"
	zk_wait
}

zk_wait() {
	wait_started zookeeper "$CH_START_TIMEOUT" zk_running zk_answers "127.0.0.1:$ZK_PORT" "log: $ZKLOG" \
		tail -n 30 "$ZKLOG"
	log "zookeeper: up (pid $(cat "$ZKPID"))"
}

zk_stop() { stop_pid zookeeper "$ZKPID" "$ZKDIR/zoo.cfg"; }

cluster_node_start() { (cluster_node "$1" && ch_start) || die "cluster node $1 did not start"; }
cluster_node_stop() { (cluster_node "$1" && ch_stop); }

# cluster_wait_ddl: every node sees the cluster and runs ON CLUSTER DDL (a
# no-op CREATE DATABASE on all of them).
cluster_wait_ddl() {
	local i
	for ((i = 0; i < 60; i++)); do
		if (cluster_node 1 && ch_query "CREATE DATABASE IF NOT EXISTS default ON CLUSTER $CLUSTER_NAME" >/dev/null 2>&1); then
			log "cluster: distributed DDL answers on all $(cluster_nodes) nodes"
			return 0
		fi
		sleep 1
	done
	die "cluster: ON CLUSTER DDL did not complete within 60 s (logs: $CLUSTER_DIR/ch*/log/)"
}

cmd_cluster_up() {
	with_lock "$CLUSTER_DIR"
	ensure_gitignore
	ensure_clickhouse
	zk_start
	local n
	for ((n = 1; n <= $(cluster_nodes); n++)); do cluster_node_start "$n"; done
	cluster_wait_ddl
	log "cluster up: $CLUSTER_NAME, $CLUSTER_SHARDS shards x $CLUSTER_REPLICAS replicas on $(cluster_addrs), zookeeper 127.0.0.1:$ZK_PORT"
	print_cluster_env >&2
}

cmd_cluster_down() {
	with_lock "$CLUSTER_DIR"
	local n
	for ((n = 1; n <= $(cluster_nodes); n++)); do cluster_node_stop "$n"; done
	zk_stop
}

cmd_cluster_status() {
	local ok=0 n
	CH_CLIENT=$(command -v clickhouse-client || true)
	if zk_running && zk_answers; then
		echo "zookeeper:  UP      127.0.0.1:$ZK_PORT pid $(cat "$ZKPID") log $ZKLOG"
	else
		echo "zookeeper:  DOWN"
		ok=1
	fi
	for ((n = 1; n <= $(cluster_nodes); n++)); do
		# shellcheck disable=SC2030,SC2031 # cluster_node sets globals in the subshell only
		if (cluster_node "$n" && ch_running && [ -n "$CH_CLIENT" ] && ch_answers); then
			echo "node $n:     UP      127.0.0.1:$((CLUSTER_CH_PORT_BASE + n)) shard $(((n - 1) / CLUSTER_REPLICAS + 1)) logs $CLUSTER_DIR/ch$n/log/"
		else
			echo "node $n:     DOWN    127.0.0.1:$((CLUSTER_CH_PORT_BASE + n))"
			ok=1
		fi
	done
	return $ok
}

# print_cluster_env: the cluster's name and nodes; CHATWARDEN_CLUSTER_ADDR is
# the node that chatwarden (and make test-cluster) connects to.
print_cluster_env() {
	echo "export CHATWARDEN_CLUSTER_NAME=$CLUSTER_NAME"
	echo "export CHATWARDEN_CLUSTER_ADDR=127.0.0.1:$((CLUSTER_CH_PORT_BASE + 1))"
	echo "export CHATWARDEN_CLUSTER_ADDRS=$(cluster_addrs)"
	echo "export CHATWARDEN_ZK_ADDR=127.0.0.1:$ZK_PORT"
}

# ---------------------------------------------------------------- commands

print_env() {
	echo "export CHATWARDEN_KAFKA_BROKERS=127.0.0.1:$KAFKA_PORT"
	echo "export CHATWARDEN_CLICKHOUSE_ADDR=127.0.0.1:$CH_PORT"
	echo "export CHDB_LIB_PATH=$CHDB_LIB"
}

cmd_up() {
	with_lock
	ensure_gitignore
	kafka_start
	ensure_default_topics
	ch_start
	ensure_chdb
	log "stack up. logs: kafka $KLOG ; clickhouse $CLOGDIR/"
	log "env: eval \"\$(scripts/stack.sh env)\""
	print_env >&2
}

cmd_down() {
	with_lock
	kafka_stop
	ch_stop
}

cmd_status() {
	local ok=0
	find_java || true
	if kafka_running; then
		if [ -n "$JAVA" ] && kafka_answers; then
			echo "kafka:      UP      127.0.0.1:$KAFKA_PORT pid $(cat "$KPID") ($(kafka_version)) log $KLOG"
		else
			echo "kafka:      RUNNING but not answering on 127.0.0.1:$KAFKA_PORT pid $(cat "$KPID") log $KLOG"
			ok=1
		fi
	else
		echo "kafka:      DOWN"
		ok=1
	fi
	CH_CLIENT=$(command -v clickhouse-client || true)
	if ch_running; then
		if [ -n "$CH_CLIENT" ] && ch_answers; then
			echo "clickhouse: UP      127.0.0.1:$CH_PORT (http :$CH_HTTP_PORT) pid $(cat "$CPID") version $(ch_query 'SELECT version()') logs $CLOGDIR/"
		else
			echo "clickhouse: RUNNING but not answering on 127.0.0.1:$CH_PORT pid $(cat "$CPID") logs $CLOGDIR/"
			ok=1
		fi
	else
		echo "clickhouse: DOWN"
		ok=1
	fi
	return $ok
}

ensure_gitignore() {
	# .stack/ must never be committed (append only).
	local gi="$ROOT/.gitignore"
	if [ -d "$ROOT/.git" ] || [ -f "$ROOT/.git" ]; then
		if ! grep -qxE '/?\.stack/?' "$gi" 2>/dev/null; then
			[ -s "$gi" ] && [ -n "$(tail -c1 "$gi")" ] && echo >>"$gi"
			echo ".stack/" >>"$gi"
		fi
	fi
}

usage() {
	sed -n '2,38p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'
}

main() {
	local cmd=${1:-}
	shift || true
	case "$cmd" in
	up) cmd_up ;;
	down) cmd_down ;;
	status) cmd_status ;;
	env) print_env ;;
	topic)
		[ $# -ge 1 ] || die "usage: stack.sh topic NAME [PARTITIONS]"
		ensure_java
		ensure_kafka_libs
		write_kafka_config
		kafka_running || die "kafka is not running (scripts/stack.sh up)"
		kafka_topic_create "$1" "${2:-4}"
		;;
	topics)
		ensure_java
		kafka_running || die "kafka is not running (scripts/stack.sh up)"
		kafka_topics_list
		;;
	kafka-stop) with_lock; kafka_stop ;;
	kafka-start) with_lock; kafka_start ;;
	ch-stop) with_lock; ch_stop ;;
	ch-start) with_lock; ch_start ;;
	ch-config)
		[ $# -ge 1 ] || die "usage: stack.sh ch-config DIR"
		write_clickhouse_files "$1"
		;;
	kafka-config)
		[ $# -ge 1 ] || die "usage: stack.sh kafka-config DIR"
		write_kafka_files "$1" "$1/data"
		;;
	cluster-up) cmd_cluster_up ;;
	cluster-down) cmd_cluster_down ;;
	cluster-status) cmd_cluster_status ;;
	cluster-env) print_cluster_env ;;
	cluster-node-start) with_lock "$CLUSTER_DIR"; ensure_clickhouse; cluster_node_start "${1:?usage: stack.sh cluster-node-start N}" ;;
	cluster-node-stop) with_lock "$CLUSTER_DIR"; cluster_node_stop "${1:?usage: stack.sh cluster-node-stop N}" ;;
	zk-start) with_lock "$CLUSTER_DIR"; zk_start ;;
	zk-stop) with_lock "$CLUSTER_DIR"; zk_stop ;;
	-h | --help | help) usage ;;
	*)
		usage >&2
		exit 2
		;;
	esac
}

main "$@"
