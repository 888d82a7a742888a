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

	"github.com/chatwarden/chatwarden/internal/subproc"
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
	// The configuration comes from scripts/stack.sh, which writes the
	// stack's and the drills' too: one place for Kafka's config.
	gen := exec.Command("bash", filepath.Join(repoRoot(), "scripts", "stack.sh"), "kafka-config", dir)
	gen.Env = subproc.Env("CHATWARDEN_KAFKA_PORT="+strconv.Itoa(ports[0]), "CHATWARDEN_KAFKA_CONTROLLER_PORT="+strconv.Itoa(ports[1]),
		"CHATWARDEN_KAFKA_SSL_KEYSTORE="+pki.KeyCertFile, "CHATWARDEN_KAFKA_SSL_TRUSTSTORE="+pki.CAFile,
		"CHATWARDEN_KAFKA_BROKER_PASSWORD="+brokerPassword)
	if out, err := gen.CombinedOutput(); err != nil {
		t.Fatalf("scripts/stack.sh kafka-config: %v\n%s", err, out)
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

// clusterID returns a random Kafka cluster id (a base64url UUID) that does
// not start with '-': kafka-storage's argument parser takes such an id for
// an option ("argument --cluster-id/-t: expected one argument"), which
// failed TestEncryptedKafka about once in 64 runs. Kafka's own
// Uuid.randomUuid draws again for the same reason.
func clusterID() string {
	for {
		b := make([]byte, 16)
		_, _ = rand.Read(b)
		b[6] = b[6]&0x0f | 0x40
		b[8] = b[8]&0x3f | 0x80
		if id := base64.RawURLEncoding.EncodeToString(b); id[0] != '-' {
			return id
		}
	}
}
