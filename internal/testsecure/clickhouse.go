package testsecure

import (
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"testing"
	"time"
)

// ClickHouse is a running clickhouse-server whose only listener is the
// native protocol over TLS, and whose only user is User, identified by the
// SHA-256 of Password. There is no "default" user and no plain-text port.
type ClickHouse struct {
	// Addr is the TLS native-protocol address, 127.0.0.1:port.
	Addr string
	// User and Password are the only credentials the server accepts.
	User, Password string
	// PKI signed the server's certificate; clients trust PKI.CAFile.
	PKI *PKI
	// Dir holds the configuration, data and logs.
	Dir string
}

// StartClickHouse starts a TLS-only ClickHouse (Debian's clickhouse-server,
// the 18.16 the rest of the suite uses) with pki's server certificate and
// waits until it completes a TLS handshake. The server is killed when t
// ends. A missing binary or a server that does not start fails t.
func StartClickHouse(t testing.TB, pki *PKI) *ClickHouse {
	t.Helper()
	bin, err := exec.LookPath("clickhouse-server")
	if err != nil {
		for _, p := range []string{"/usr/bin/clickhouse-server", "/usr/sbin/clickhouse-server"} {
			if _, serr := os.Stat(p); serr == nil {
				bin, err = p, nil
				break
			}
		}
	}
	if err != nil {
		t.Fatalf("clickhouse-server is required (scripts/stack.sh up installs it): %v", err)
	}
	dir := t.TempDir()
	ch := &ClickHouse{User: "chatwarden", Password: randomSecret(), PKI: pki, Dir: dir}
	port := freePorts(t, 1)[0]
	ch.Addr = "127.0.0.1:" + strconv.Itoa(port)
	for _, sub := range []string{"data", "tmp", "user_files", "format_schemas", "log"} {
		if err := os.MkdirAll(filepath.Join(dir, sub), 0o700); err != nil {
			t.Fatal(err)
		}
	}
	sum := sha256.Sum256([]byte(ch.Password))
	files := map[string]string{
		"config.xml": fmt.Sprintf(clickhouseConfig, dir, port, pki.CertFile, pki.KeyFile),
		"users.xml":  fmt.Sprintf(clickhouseUsers, ch.User, hex.EncodeToString(sum[:])),
	}
	for name, body := range files {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(body), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	// 18.16 writes preprocessed configs next to the config file's working
	// directory: run it from dir.
	p := startProcess(t, "clickhouse-server", dir, filepath.Join(dir, "log", "stdout.log"), nil,
		bin, "--config-file="+filepath.Join(dir, "config.xml"))
	p.logFile = filepath.Join(dir, "log", "clickhouse-server.log")
	p.waitReady(t, 60*time.Second, func() error {
		if err := logContains(p.logFile, "Ready for connections"); err != nil {
			return err
		}
		return tlsHandshake(ch.Addr, pki)
	})
	return ch
}

// randomSecret returns 24 random bytes, hex encoded.
func randomSecret() string {
	b := make([]byte, 24)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

// clickhouseConfig is an 18.16 server configuration with only the secure
// native port: directory, port, certificate file, key file.
const clickhouseConfig = `<?xml version="1.0"?>
<yandex>
    <logger>
        <level>information</level>
        <log>%[1]s/log/clickhouse-server.log</log>
        <errorlog>%[1]s/log/clickhouse-server.err.log</errorlog>
        <size>10M</size>
        <count>1</count>
        <console>0</console>
    </logger>
    <listen_host>127.0.0.1</listen_host>
    <!-- no tcp_port and no http_port: TLS only -->
    <tcp_port_secure>%[2]d</tcp_port_secure>
    <openSSL>
        <server>
            <certificateFile>%[3]s</certificateFile>
            <privateKeyFile>%[4]s</privateKeyFile>
            <verificationMode>none</verificationMode>
            <loadDefaultCAFile>false</loadDefaultCAFile>
            <cacheSessions>true</cacheSessions>
            <disableProtocols>sslv2,sslv3,tlsv1,tlsv1_1</disableProtocols>
            <preferServerCiphers>true</preferServerCiphers>
        </server>
    </openSSL>
    <max_connections>256</max_connections>
    <keep_alive_timeout>3</keep_alive_timeout>
    <max_concurrent_queries>50</max_concurrent_queries>
    <uncompressed_cache_size>67108864</uncompressed_cache_size>
    <mark_cache_size>67108864</mark_cache_size>
    <path>%[1]s/data/</path>
    <tmp_path>%[1]s/tmp/</tmp_path>
    <user_files_path>%[1]s/user_files/</user_files_path>
    <format_schema_path>%[1]s/format_schemas/</format_schema_path>
    <users_config>%[1]s/users.xml</users_config>
    <default_profile>default</default_profile>
    <default_database>default</default_database>
    <timezone>UTC</timezone>
    <mlock_executable>false</mlock_executable>
    <max_table_size_to_drop>0</max_table_size_to_drop>
    <max_partition_size_to_drop>0</max_partition_size_to_drop>
</yandex>
`

// clickhouseUsers has one user: name, SHA-256 of the password (hex).
const clickhouseUsers = `<?xml version="1.0"?>
<yandex>
    <profiles>
        <default>
            <max_memory_usage>2000000000</max_memory_usage>
            <use_uncompressed_cache>0</use_uncompressed_cache>
        </default>
    </profiles>
    <users>
        <%[1]s>
            <password_sha256_hex>%[2]s</password_sha256_hex>
            <networks>
                <ip>127.0.0.1</ip>
                <ip>::1</ip>
                <ip>::ffff:127.0.0.1</ip>
            </networks>
            <profile>default</profile>
            <quota>default</quota>
        </%[1]s>
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
`
