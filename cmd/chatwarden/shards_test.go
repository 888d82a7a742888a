package main

import (
	"bufio"
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"net/http"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/chatwarden/chatwarden/ingest"
)

// metricSamples returns the samples of metric name on addr's /metrics, by
// their label text ("" without labels).
func metricSamples(t *testing.T, addr, name string) map[string]float64 {
	t.Helper()
	resp, err := http.Get("http://" + addr + "/metrics")
	if err != nil {
		return nil
	}
	defer resp.Body.Close()
	out := map[string]float64{}
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if !strings.HasPrefix(line, name+" ") && !strings.HasPrefix(line, name+"{") {
			continue
		}
		sp := strings.LastIndexByte(line, ' ')
		v, err := strconv.ParseFloat(line[sp+1:], 64)
		if err != nil {
			continue
		}
		out[strings.TrimPrefix(line[:sp], name)] = v
	}
	return out
}

// TestServeOwnsEveryShardAlone: with detect.ownership: group, one serve is
// the group's only member and runs an engine for every shard (each
// engine's metrics labelled by its shard), reports each shard on the
// control topic (created with one partition per shard), and counts no
// shard unowned.
func TestServeOwnsEveryShardAlone(t *testing.T) {
	t.Parallel()
	b := make([]byte, 5)
	_, _ = rand.Read(b)
	id := hex.EncodeToString(b)
	topic, group := "test-"+id+"-detect-shards", "test-"+id+"-detect"
	const shards = 3
	addr := freeAddr(t)
	ic := ingest.Config{Brokers: []string{"127.0.0.1:9092"}}
	if v := os.Getenv("CHATWARDEN_KAFKA_BROKERS"); v != "" {
		ic.Brokers = strings.Split(v, ",")
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		_ = ingest.DeleteTopics(ctx, ic, topic)
	})
	startServe(t, addr, fmt.Sprintf("detect:\n  ownership: group\n  shards: %d\n  shard_topic: %s\n  shard_group: %s\n  shard_session_timeout: 6s\n",
		shards, topic, group))
	var unowned map[string]float64
	for deadline := time.Now().Add(progressWait); ; time.Sleep(200 * time.Millisecond) {
		unowned = metricSamples(t, addr, "chatwarden_detect_shard_unowned_seconds")
		windows := metricSamples(t, addr, "chatwarden_detect_last_window_end_timestamp_seconds")
		ok := len(unowned) == shards && len(windows) == shards
		for s := range shards {
			label := fmt.Sprintf(`{shard="%d"}`, s)
			if v, has := unowned[label]; !has || v > 10 {
				ok = false
			}
			if _, has := windows[label]; !has {
				ok = false
			}
		}
		if ok {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("serve did not own and report all %d shards: unowned seconds %v, engines %v", shards, unowned, windows)
		}
	}
	if n := metricSamples(t, addr, "chatwarden_detect_shards_unowned")[""]; n != 0 {
		t.Errorf("chatwarden_detect_shards_unowned = %v, want 0", n)
	}
	g, err := ingest.NewShardGroup(ic, ingest.ShardGroupOptions{Topic: topic, Group: group, Shards: shards, SessionTimeout: 6 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	defer g.Close()
	// An owner writes its shard's progress record in a goroutine of its
	// own (at once, then every heartbeat), so the engine's metrics can show
	// before the first record is on the topic (CI at 1daa472 read the
	// topic in between once): wait for every record.
	host, _ := os.Hostname()
	owned := func(progress map[int]ingest.ShardProgress, s int) bool {
		p, ok := progress[s]
		return ok && strings.HasPrefix(p.Owner, host+":")
	}
	for deadline := time.Now().Add(progressWait); ; time.Sleep(200 * time.Millisecond) {
		progress, err := g.Progress(t.Context())
		if err != nil {
			t.Fatal(err)
		}
		all := true
		for s := range shards {
			all = all && owned(progress, s)
		}
		if all {
			return
		}
		if time.Now().After(deadline) {
			for s := range shards {
				if !owned(progress, s) {
					p, ok := progress[s]
					t.Errorf("shard %d's progress record: %+v (found %v), want one owned by this host", s, p, ok)
				}
			}
			return
		}
	}
}
