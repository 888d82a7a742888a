//go:build drills

package cluster_test

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/segmentio/kafka-go"

	"github.com/chatwarden/chatwarden/ingest"
	"github.com/chatwarden/chatwarden/internal/slackfake"
	"github.com/chatwarden/chatwarden/internal/storetest"
	"github.com/chatwarden/chatwarden/internal/subproc"
	"github.com/chatwarden/chatwarden/models"
	"github.com/chatwarden/chatwarden/store"
)

// serveShards is detect.shards in the two-serve drill: two per instance.
const serveShards = 4

// TestDrillClusterServeKill: two `chatwarden serve` instances share the
// work on the local cluster (one ingest group, detect.ownership: group
// with 4 detection shards, findings.transport: kafka with one alert
// consumer group, one Slack workspace, slackfake). Attackers stream in, each
// a new actor denied 15 times in a few seconds (a denied_burst finding of
// the window detectors, on the detection shard of the actor). One instance
// is killed with SIGKILL half-way. Afterwards every attacker has exactly one
// Slack message and no message was posted twice; the killed instance's
// shards were taken over by the survivor, which evaluated the windows it
// had missed, and the time from the kill to the survivor owning them is
// measured.
func TestDrillClusterServeKill(t *testing.T) {
	cfg, _, _ := drillStore(t)
	storetest.Open(t, cfg) // migrated on the cluster, dropped at the end
	bin := buildBinary(t)
	b := make([]byte, 5)
	_, _ = rand.Read(b)
	id := hex.EncodeToString(b)
	brokers := []string{"127.0.0.1:9092"}
	if v := os.Getenv("CHATWARDEN_KAFKA_BROKERS"); v != "" {
		brokers = strings.Split(v, ",")
	}
	ic := ingest.Config{Brokers: brokers, AccessTopic: "drill-" + id + "-access", ConsentTopic: "drill-" + id + "-consent",
		DeadLetterTopic: "drill-" + id + "-deadletter", Group: "drill-" + id}
	shardTopic, findingsTopic := "drill-"+id+"-detect-shards", "drill-"+id+"-findings"
	ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
	defer cancel()
	if err := ingest.CreateTopics(ctx, ic, ingest.TopicSpec{Name: ic.AccessTopic, Partitions: 4},
		ingest.TopicSpec{Name: ic.ConsentTopic, Partitions: 1}, ingest.TopicSpec{Name: ic.DeadLetterTopic, Partitions: 1}); err != nil {
		t.Fatalf("kafka at %v is required: %v", brokers, err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		_ = ingest.DeleteTopics(ctx, ic, ic.AccessTopic, ic.ConsentTopic, ic.DeadLetterTopic, shardTopic, findingsTopic)
	})
	slack := slackfake.New(nil)
	t.Cleanup(slack.Close)
	key := make([]byte, 32)
	_, _ = rand.Read(key)
	yaml := fmt.Sprintf(`clickhouse:
  addr: %s
  database: %s
  cluster: %s
  query_timeout: 2m
ingest:
  brokers: [%s]
  access_topic: %s
  consent_topic: %s
  dead_letter_topic: %s
  group: %s
  batch_size: 2000
  linger: 50ms
  session_timeout: 6s
detect:
  window: 10s
  backfill_days: 1
  ownership: group
  shards: %d
  shard_topic: %s
  shard_group: %s
  shard_session_timeout: 6s
findings:
  transport: kafka
  topic: %s
  group: %s
  partitions: 4
alert:
  default_channel: C0DRILL
  slack:
    token: xoxb-drill
    api_url: %s
    timeout: 5s
`, cfg.Addr, cfg.Database, cfg.Cluster, strings.Join(brokers, ", "), ic.AccessTopic, ic.ConsentTopic, ic.DeadLetterTopic, ic.Group,
		serveShards, shardTopic, "drill-"+id+"-detect", findingsTopic, "drill-"+id+"-alert", slack.URL())
	cfgFile := filepath.Join(t.TempDir(), "chatwarden.yaml")
	if err := os.WriteFile(cfgFile, []byte(yaml), 0o600); err != nil {
		t.Fatal(err)
	}
	env := subproc.Env("CHATWARDEN_PSEUDONYM_KEY=" + hex.EncodeToString(key))
	start := func(name string) *subproc.Proc {
		p := subproc.Start(t, name, bin, env, "serve", "-config", cfgFile, "-addr", freeAddr(t))
		t.Cleanup(func() {
			if t.Failed() {
				t.Logf("%s (pid %d) stderr, last 80 lines:\n%s", name, p.Cmd.Process.Pid, p.Tail(80))
			}
		})
		return p
	}
	a, bp := start("serve-a"), start("serve-b")
	host, _ := os.Hostname()
	memberA, memberB := fmt.Sprintf("%s:%d", host, a.Cmd.Process.Pid), fmt.Sprintf("%s:%d", host, bp.Cmd.Process.Pid)
	sg, err := ingest.NewShardGroup(ic, ingest.ShardGroupOptions{Topic: shardTopic, Group: "unused", Shards: serveShards, SessionTimeout: 6 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	defer sg.Close()
	owners := func() map[int]string {
		ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
		defer cancel()
		ps, err := sg.Progress(ctx)
		if err != nil {
			return nil
		}
		out := map[int]string{}
		for s, p := range ps {
			if time.Since(p.At) < 8*time.Second { // a live owner reports every 2.5 s (window/4)
				out[s] = p.Owner
			}
		}
		return out
	}
	subproc.WaitFor(t, 5*time.Minute, "both serve instances to own detection shards", func() bool {
		o := owners()
		n := map[string]int{}
		for _, m := range o {
			n[m]++
		}
		return len(o) == serveShards && n[memberA] > 0 && n[memberB] > 0
	})
	before := owners()
	var shardsB []int
	for s, m := range before {
		if m == memberB {
			shardsB = append(shardsB, s)
		}
	}
	sort.Ints(shardsB)
	t.Logf("detection shards before the kill: %v (a=%s, b=%s)", before, memberA, memberB)

	// Attackers: one every 3 s for 90 s (33 in all), each denied 40 times at once (a
	// new actor's prior is 0.1 a window over 32 windows: 16 and more fire).
	w := &kafka.Writer{Addr: kafka.TCP(brokers...), Topic: ic.AccessTopic, Balancer: kafka.Murmur2Balancer{}, RequiredAcks: kafka.RequireAll, BatchTimeout: 5 * time.Millisecond}
	defer w.Close()
	var (
		mu        sync.Mutex
		attackers = map[string]time.Time{}
		// takeover: from the kill to the survivor owning every shard of
		// the killed instance.
		takeover time.Duration
	)
	attack := func(actor string) {
		now := time.Now().UTC()
		msgs := make([]kafka.Message, 40)
		for j := range msgs {
			msgs[j] = kafka.Message{Key: []byte(actor), Value: fmt.Appendf(nil,
				`{"event_id":"%s-%d","ts":%q,"actor":{"id":%q,"type":"human","role":"agent"},"action":"read","store":"payments","resource":{"type":"payment_method"},"subject_id":"c-%d","result":"denied","purpose":"support"}`,
				actor, j, now.Format(time.RFC3339), actor, j)}
		}
		if err := w.WriteMessages(t.Context(), msgs...); err != nil {
			t.Errorf("producing %s: %v", actor, err)
			return
		}
		mu.Lock()
		attackers[actor] = now
		mu.Unlock()
	}
	// Three attackers of serve-b's shards, produced just before the kill:
	// their window closes after it, so serve-b never evaluates it.
	var ofB []string
	for k := 0; len(ofB) < 3; k++ {
		if a := fmt.Sprintf("attacker-%s-k%02d", id, k); containsInt(shardsB, shardOfActor(t, cfg, a)) {
			ofB = append(ofB, a)
		}
	}
	const attacks = 30
	var killedAt time.Time
	for i := range attacks {
		attack(fmt.Sprintf("attacker-%s-%03d", id, i))
		if i == attacks/3 {
			for _, a := range ofB {
				attack(a)
			}
			if err := bp.Cmd.Process.Signal(syscall.SIGKILL); err != nil {
				t.Fatal(err)
			}
			killedAt = time.Now()
			t.Logf("SIGKILL serve-b (pid %d) after %d attackers; its shards %v", bp.Cmd.Process.Pid, i+1, shardsB)
			go func() {
				// Time to take over: until serve-a reports every shard of b.
				for time.Since(killedAt) < 3*time.Minute {
					o := owners()
					all := len(shardsB) > 0
					for _, s := range shardsB {
						all = all && o[s] == memberA
					}
					if all {
						mu.Lock()
						takeover = time.Since(killedAt)
						mu.Unlock()
						return
					}
					time.Sleep(200 * time.Millisecond)
				}
			}()
		}
		time.Sleep(3 * time.Second)
	}
	lastAttack := time.Now()
	for deadline := time.Now().Add(4 * time.Minute); ; time.Sleep(time.Second) {
		n := postsMentioning(slack, attackerNames(&mu, attackers))
		missing := 0
		for _, a := range attackerNames(&mu, attackers) {
			if n[a] == 0 {
				missing++
			}
		}
		if missing == 0 {
			break
		}
		if time.Now().After(deadline) {
			posts, updates := slack.Counts()
			t.Fatalf("%d of %d attackers without a Slack message after 4 minutes: events %d, denied_burst findings %d, findings %d, alerts %d, Slack posts %d updates %d",
				missing, len(n), storetest.Count(t, cfg, "SELECT count() FROM events"),
				storetest.Count(t, cfg, "SELECT count() FROM findings WHERE detector = 'denied_burst'"),
				storetest.Count(t, cfg, "SELECT count() FROM findings"), storetest.Count(t, cfg, "SELECT count() FROM alerts"), posts, updates)
		}
	}
	alertedAfter := time.Since(lastAttack)
	time.Sleep(30 * time.Second) // three more windows: a double post would show now
	mu.Lock()
	took := takeover
	mu.Unlock()
	if took == 0 {
		t.Errorf("serve-a never reported every shard of serve-b (%v): owners now %v", shardsB, owners())
	}
	names := attackerNames(&mu, attackers)
	n := postsMentioning(slack, names)
	lost, doubled := 0, 0
	for _, a := range names {
		switch {
		case n[a] == 0:
			lost++
			t.Errorf("no Slack message for %s", a)
		case n[a] > 1:
			doubled += n[a] - 1
			t.Errorf("%d Slack messages for %s", n[a], a)
		}
	}
	for msg, k := range postsByMessage(slack) {
		if k > 1 {
			doubled += k - 1
			t.Errorf("Slack message %s posted %d times", msg, k)
		}
	}
	// The windows serve-b had not evaluated: attackers of its shards whose
	// window was still open at the kill (it is evaluated 5 s after it
	// ends), all judged by serve-a (every attacker has its message).
	missed := 0
	mu.Lock()
	for a, at := range attackers {
		end := at.Truncate(10 * time.Second).Add(15 * time.Second)
		if end.After(killedAt) && containsInt(shardsB, shardOfActor(t, cfg, a)) {
			missed++
		}
	}
	mu.Unlock()
	if missed < len(ofB) {
		t.Errorf("%d attackers of serve-b's shards in windows it had not evaluated, want at least %d", missed, len(ofB))
	}
	// serve-a's log: each of b's shards taken over, and how many windows
	// it evaluated that b had not.
	caughtUp := map[int]string{}
	for _, line := range strings.Split(a.Log(), "\n") {
		for _, s := range shardsB {
			if strings.Contains(line, "evaluating the windows its previous owner missed") && strings.Contains(line, fmt.Sprintf(" shard=%d ", s)) {
				_, caughtUp[s], _ = strings.Cut(line, "windows=")
			}
		}
	}
	for _, s := range shardsB {
		if _, ok := caughtUp[s]; !ok {
			t.Errorf("serve-a's log does not show it evaluating the windows shard %d missed", s)
		}
	}
	posts, updates := slack.Counts()
	t.Logf("RESULT serve_kill: attackers=%d slack_lost=%d slack_doubled=%d posts=%d updates=%d shards_of_killed=%v takeover_s=%.1f attackers_in_missed_windows=%d windows_caught_up=%v all_alerted_after_last_attack_s=%.1f",
		len(names), lost, doubled, posts, updates, shardsB, took.Seconds(), missed, caughtUp, alertedAfter.Seconds())
}

func attackerNames(mu *sync.Mutex, m map[string]time.Time) []string {
	mu.Lock()
	defer mu.Unlock()
	out := make([]string, 0, len(m))
	for a := range m {
		out = append(out, a)
	}
	sort.Strings(out)
	return out
}

func containsInt(xs []int, x int) bool {
	for _, v := range xs {
		if v == x {
			return true
		}
	}
	return false
}

// shardOfActor is the detection shard of actor, whose events name no
// tenant (so "default"): store.Shard's predicate on a cluster, the storage
// sharding key cityHash64(tenant, actor_id), computed by ClickHouse.
func shardOfActor(t *testing.T, cfg store.Config, actor string) int {
	t.Helper()
	return int(storetest.Count(t, cfg, fmt.Sprintf("SELECT toUInt64(cityHash64('%s', '%s') %% %d)", models.DefaultTenant, actor, serveShards)))
}

// postsMentioning counts, per actor, the Slack messages that name it.
func postsMentioning(s *slackfake.Server, actors []string) map[string]int {
	out := map[string]int{}
	for _, list := range s.All() {
		for _, m := range list {
			for _, a := range actors {
				if strings.Contains(m.Text, a) || strings.Contains(string(m.Blocks), a) {
					out[a]++
				}
			}
		}
	}
	return out
}

// postsByMessage counts posts per alert message id (from the metadata).
func postsByMessage(s *slackfake.Server) map[string]int {
	out := map[string]int{}
	for _, list := range s.All() {
		for _, m := range list {
			var md struct {
				Payload map[string]any `json:"event_payload"`
			}
			_ = json.Unmarshal(m.Metadata, &md)
			id, _ := md.Payload["message_id"].(string)
			out[id]++
		}
	}
	return out
}

// buildBinary builds chatwarden for the drill's subprocesses.
func buildBinary(t *testing.T) string {
	t.Helper()
	bin, err := subproc.Build(repoRoot(t), t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	return bin
}

// freeAddr returns a 127.0.0.1 address nothing listens on right now.
func freeAddr(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}
