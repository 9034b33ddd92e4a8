package gateway

import (
	"encoding/json"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/mogate/mogate/config"
	"github.com/mogate/mogate/matcher/redisstore/redistest"
)

// TestStartupNamesStore: the start-up log says where sessions live: the
// data directory of store: memory; the Redis address (without the
// password of the URL), its version and the persistence settings read from
// it for store: redis.
func TestStartupNamesStore(t *testing.T) {
	const password = "pw-Secret-0042"
	srv := redistest.Start(t, "--user", "mogate", "on", ">"+password, "~*", "&*", "+@all")
	dataDir := t.TempDir()
	cases := []struct {
		name, extra string
		want        map[string]any
	}{
		{"memory", "data_dir: " + dataDir + "\n", map[string]any{"store": "memory", "data_dir": dataDir}},
		{"redis", "store: redis\nredis_url: redis://mogate:" + password + "@" + srv.Addr() + "\n", map[string]any{
			"store": "redis", "redis_addr": srv.Addr(), "appendonly": "yes", "appendfsync": "always",
			"maxmemory_policy": "noeviction", "redis_unsafe": false, "redis_prefix": "mogate",
		}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			cfg, err := config.Parse([]byte(testYAML+tc.extra), func(string) (string, bool) { return "", false })
			if err != nil {
				t.Fatal(err)
			}
			logs := &syncBuffer{}
			s, _, err := open(Options{Config: cfg, Logger: slog.New(slog.NewJSONHandler(logs, nil)), Now: time.Now}, false)
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { _ = s.Close() })
			if strings.Contains(logs.String(), password) {
				t.Fatalf("the log holds the Redis password:\n%s", logs)
			}
			var line map[string]any
			for l := range strings.Lines(logs.String()) {
				if json.Unmarshal([]byte(l), &line) == nil && line["msg"] == "store" {
					break
				}
				line = nil
			}
			if line == nil {
				t.Fatalf("no store line at start:\n%s", logs)
			}
			for k, v := range tc.want {
				if line[k] != v {
					t.Errorf("%s = %v, want %v (%v)", k, line[k], v, line)
				}
			}
			if v, _ := line["redis_version"].(string); tc.name == "redis" && !strings.HasPrefix(v, "redis ") && !strings.HasPrefix(v, "valkey ") {
				t.Errorf("redis_version = %q", v)
			}
		})
	}
}
