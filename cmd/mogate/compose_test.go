package main

import (
	"os"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/mogate/mogate/config"
	"github.com/mogate/mogate/matcher/redisstore/redisurl"
)

// composeFile is the part of deploy/compose.yaml the test reads.
type composeFile struct {
	Services map[string]struct {
		Image           string            `yaml:"image"`
		Environment     map[string]string `yaml:"environment"`
		Volumes         []string          `yaml:"volumes"`
		Command         []string          `yaml:"command"`
		StopGracePeriod string            `yaml:"stop_grace_period"`
		DependsOn       []string          `yaml:"depends_on"`
	} `yaml:"services"`
}

// TestComposeExample: deploy/compose.mogate.yaml passes mogate's own
// configuration check with every ${VAR} set, and is a Redis deployment
// through Sentinel that waits for a replica; deploy/compose.yaml runs two
// mogate replicas on it, hands each every variable the file names, gives
// them time to drain, and runs a Redis primary, a replica and three
// Sentinels with the persistence settings mogate refuses to start without.
func TestComposeExample(t *testing.T) {
	b, err := os.ReadFile("../../deploy/compose.mogate.yaml")
	if err != nil {
		t.Fatal(err)
	}
	env := map[string]string{
		"REDIS_PASSWORD":     "0123456789abcdef0123456789abcdef",
		"SENTINEL_PASSWORD":  "fedcba9876543210fedcba9876543210",
		"MOGATE_SHOP_KEY":    "shop-live-key-0123456789abcdef",
		"MOGATE_SHOP_WHSEC":  "whsec_c2hvcC1TRUNSRVRWQUxVRS13aA==",
		"TWILIO_ACCOUNT_SID": "AC00000000000000000000000000000000",
		"TWILIO_AUTH_TOKEN":  "twilio-token",
	}
	var named []string
	for _, line := range strings.Split(string(b), "\n") {
		line, _, _ = strings.Cut(line, "#")
		for _, m := range regexp.MustCompile(`\$\{([A-Z0-9_]+)\}`).FindAllStringSubmatch(line, -1) {
			named = append(named, m[1])
			if _, ok := env[m[1]]; !ok {
				t.Errorf("compose.mogate.yaml uses ${%s}, which this test does not set", m[1])
			}
		}
	}
	cfg, err := config.Parse(b, func(k string) (string, bool) { v, ok := env[k]; return v, ok })
	if err != nil {
		t.Fatal(err)
	}
	u, err := redisurl.Parse(cfg.RedisURL.Reveal())
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Store != "redis" || u.Kind != redisurl.Sentinel || len(u.Addrs) != 3 || cfg.RedisWaitReplicas < 1 || cfg.RedisUnsafe {
		t.Errorf("compose.mogate.yaml: want store redis through 3 Sentinels with redis_wait_replicas >= 1, got store %s, %s with %d addresses, wait %d, unsafe %v",
			cfg.Store, u.Kind, len(u.Addrs), cfg.RedisWaitReplicas, cfg.RedisUnsafe)
	}
	if !strings.HasPrefix(cfg.Listen, "0.0.0.0:") {
		t.Errorf("listen %s: in a container mogate must listen on every interface", cfg.Listen)
	}

	cb, err := os.ReadFile("../../deploy/compose.yaml")
	if err != nil {
		t.Fatal(err)
	}
	var c composeFile
	if err := yaml.Unmarshal(cb, &c); err != nil {
		t.Fatal(err)
	}
	var replicas, redis, sentinels int
	for name, s := range c.Services {
		script := strings.Join(s.Command, " ")
		switch {
		case slices.Contains(s.Volumes, "./compose.mogate.yaml:/etc/mogate/mogate.yaml:ro"):
			replicas++
			for _, v := range named {
				if !strings.HasPrefix(s.Environment[v], "${"+v) {
					t.Errorf("%s: environment does not pass %s (the config names it)", name, v)
				}
			}
			grace, err := time.ParseDuration(s.StopGracePeriod)
			if need := time.Duration(cfg.ShutdownDelay) + drainFor; err != nil || grace <= need {
				t.Errorf("%s: stop_grace_period %q must exceed shutdown_delay + drain = %s", name, s.StopGracePeriod, need)
			}
		case strings.Contains(script, "exec redis-sentinel"):
			sentinels++
			if !strings.Contains(script, "sentinel monitor "+u.Master+" ") {
				t.Errorf("%s does not monitor %q, the primary redis_url names", name, u.Master)
			}
		case strings.Contains(script, "exec redis-server"):
			redis++
			for _, want := range []string{"appendonly yes", "appendfsync always", "no-appendfsync-on-rewrite no", "maxmemory-policy noeviction", "requirepass", "masterauth"} {
				if !strings.Contains(script, want) {
					t.Errorf("%s: Redis configuration lacks %q", name, want)
				}
			}
		}
	}
	if replicas != 2 || redis < 2 || sentinels != 3 {
		t.Errorf("compose.yaml: %d mogate replicas, %d Redis servers, %d Sentinels; want 2, at least 2, 3", replicas, redis, sentinels)
	}
	for _, a := range u.Addrs {
		host, _, _ := strings.Cut(a, ":")
		if _, ok := c.Services[host]; !ok {
			t.Errorf("redis_url names %s, which is not a service of compose.yaml", host)
		}
	}
}
