package testsecure

import (
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

// Kafka is a running single-node KRaft broker whose only client listener
// is SASL_SSL with SCRAM-SHA-512. The controller listener is plain text on
// 127.0.0.1 (broker and controller share the process).
type Kafka struct {
	// Addr is the SASL_SSL bootstrap address, 127.0.0.1:port.
	Addr string
	// User and Password are SCRAM-SHA-512 credentials created when the
	// storage was formatted.
	User, Password string
	// PKI signed the broker's certificate; clients trust PKI.CAFile.
	PKI *PKI
	// Dir holds the configuration, data and log.
	Dir string
}

// StartKafka formats a fresh KRaft storage with SCRAM credentials and
// starts Kafka from the jars scripts/stack.sh fetched (.stack/kafka/libs,
// or $CHATWARDEN_STACK_DIR/kafka/libs), with a 512 MiB heap, then waits
// until the broker has started and completes a TLS handshake. The broker
// is killed when t ends. Missing Java or jars, or a broker that does not
// start, fail t.
func StartKafka(t testing.TB, pki *PKI) *Kafka {
	t.Helper()
	java, err := findJava()
	if err != nil {
		t.Fatalf("java 17+ is required (scripts/stack.sh up installs it): %v", err)
	}
	libs, err := kafkaLibs()
	if err != nil {
		t.Fatalf("kafka jars are required (scripts/stack.sh up fetches them): %v", err)
	}
	dir := t.TempDir()
	k := &Kafka{User: "chatwarden", Password: randomSecret(), PKI: pki, Dir: dir}
	brokerPassword := randomSecret()
	ports := freePorts(t, 2)
	k.Addr = "127.0.0.1:" + strconv.Itoa(ports[0])
	props := fmt.Sprintf(kafkaProperties, ports[0], ports[1], filepath.Join(dir, "data"),
		pki.KeyCertFile, pki.CAFile, brokerPassword)
	files := map[string]string{"server.properties": props, "log4j2.properties": kafkaLog4j}
	for name, body := range files {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(body), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	jvm := func(heap string, args ...string) []string {
		return append([]string{java, heap, "-XX:+UseSerialGC", "-XX:TieredStopAtLevel=1", "-Xshare:auto", "-Djava.awt.headless=true",
			"-Dlog4j2.configurationFile=" + filepath.Join(dir, "log4j2.properties"), "-cp", filepath.Join(libs, "*")}, args...)
	}
	logFile := filepath.Join(dir, "kafka.log")

	// The SCRAM credentials go into the metadata log at format time, so
	// the broker accepts them from its first second.
	format := jvm("-Xmx256m", "kafka.tools.StorageTool", "format",
		"--cluster-id", clusterID(), "--config", filepath.Join(dir, "server.properties"),
		"--add-scram", fmt.Sprintf("SCRAM-SHA-512=[name=%s,password=%s]", k.User, k.Password),
		"--add-scram", fmt.Sprintf("SCRAM-SHA-512=[name=broker,password=%s]", brokerPassword))
	if out, err := exec.Command(format[0], format[1:]...).CombinedOutput(); err != nil {
		t.Fatalf("formatting kafka storage: %v\n%s", err, out)
	}

	p := startProcess(t, "kafka", dir, logFile, nil, jvm("-Xmx512m", "kafka.Kafka", filepath.Join(dir, "server.properties"))...)
	p.waitReady(t, 120*time.Second, func() error {
		if err := logContains(logFile, "Kafka Server started"); err != nil {
			return err
		}
		return tlsHandshake(k.Addr, pki)
	})
	return k
}

// findJava returns a java binary of version 17 or newer: $JAVA, java on
// PATH, or Debian's OpenJDK 17/21.
func findJava() (string, error) {
	cands := []string{os.Getenv("JAVA"), "java"}
	for _, glob := range []string{"/usr/lib/jvm/java-17-openjdk-*/bin/java", "/usr/lib/jvm/java-21-openjdk-*/bin/java"} {
		m, _ := filepath.Glob(glob)
		cands = append(cands, m...)
	}
	for _, c := range cands {
		if c == "" {
			continue
		}
		path, err := exec.LookPath(c)
		if err != nil {
			continue
		}
		out, err := exec.Command(path, "-version").CombinedOutput()
		if err != nil {
			continue
		}
		// `openjdk version "17.0.15" ...`
		s := string(out)
		if i := strings.Index(s, `version "`); i >= 0 {
			v := s[i+len(`version "`):]
			if j := strings.IndexAny(v, `."`); j > 0 {
				if major, err := strconv.Atoi(v[:j]); err == nil && major >= 17 {
					return path, nil
				}
			}
		}
	}
	return "", errors.New("no java 17+ on PATH or under /usr/lib/jvm")
}

// kafkaLibs finds the directory of Kafka's jars.
func kafkaLibs() (string, error) {
	var stacks []string
	if s := os.Getenv("CHATWARDEN_STACK_DIR"); s != "" {
		stacks = append(stacks, s)
	}
	// The repository root is the nearest parent with go.mod.
	if wd, err := os.Getwd(); err == nil {
		for d := wd; ; d = filepath.Dir(d) {
			if _, err := os.Stat(filepath.Join(d, "go.mod")); err == nil {
				stacks = append(stacks, filepath.Join(d, ".stack"))
				break
			}
			if filepath.Dir(d) == d {
				break
			}
		}
	}
	for _, s := range stacks {
		libs := filepath.Join(s, "kafka", "libs")
		if m, _ := filepath.Glob(filepath.Join(libs, "kafka_2.13-*.jar")); len(m) > 0 {
			return libs, nil
		}
	}
	return "", fmt.Errorf("no kafka_2.13-*.jar under %v", stacks)
}

// clusterID returns a random Kafka cluster id (a base64url UUID).
func clusterID() string {
	b := make([]byte, 16)
	_, _ = rand.Read(b)
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	return base64.RawURLEncoding.EncodeToString(b)
}

// kafkaProperties: broker port, controller port, data directory, PEM key
// store (key then certificate), PEM trust store (CA), the broker's own
// SCRAM password.
const kafkaProperties = `process.roles=broker,controller
node.id=1
controller.quorum.voters=1@127.0.0.1:%[2]d
listeners=SASL_SSL://127.0.0.1:%[1]d,CONTROLLER://127.0.0.1:%[2]d
advertised.listeners=SASL_SSL://127.0.0.1:%[1]d
controller.listener.names=CONTROLLER
listener.security.protocol.map=CONTROLLER:PLAINTEXT,SASL_SSL:SASL_SSL
inter.broker.listener.name=SASL_SSL
sasl.enabled.mechanisms=SCRAM-SHA-512
sasl.mechanism.inter.broker.protocol=SCRAM-SHA-512
listener.name.sasl_ssl.scram-sha-512.sasl.jaas.config=org.apache.kafka.common.security.scram.ScramLoginModule required username="broker" password="%[6]s";
ssl.keystore.type=PEM
ssl.keystore.location=%[4]s
ssl.truststore.type=PEM
ssl.truststore.location=%[5]s
ssl.client.auth=none
ssl.enabled.protocols=TLSv1.3,TLSv1.2
log.dirs=%[3]s
auto.create.topics.enable=false
num.partitions=2
default.replication.factor=1
min.insync.replicas=1
offsets.topic.replication.factor=1
offsets.topic.num.partitions=4
transaction.state.log.replication.factor=1
transaction.state.log.min.isr=1
share.coordinator.state.topic.replication.factor=1
share.coordinator.state.topic.min.isr=1
group.initial.rebalance.delay.ms=0
num.network.threads=2
num.io.threads=2
`

const kafkaLog4j = `status = warn
appender.out.type = Console
appender.out.name = STDOUT
appender.out.layout.type = PatternLayout
appender.out.layout.pattern = [%d] %p %m (%c)%n
rootLogger.level = INFO
rootLogger.appenderRef.out.ref = STDOUT
logger.request.name = kafka.request.logger
logger.request.level = WARN
`
