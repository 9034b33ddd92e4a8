package config

import (
	"strings"
	"testing"
	"time"
)

func TestRedisSettings(t *testing.T) {
	const secret = "pw-in-url"
	for _, tc := range []struct {
		name, yaml string
		want       []string // empty: accepted
	}{
		{"single", "store: redis\nredis_url: redis://127.0.0.1:6379/0\n", nil},
		{"sentinel with wait", "store: redis\nredis_url: redis+sentinel://:pw-in-url@h1:26379,h2:26379/mymaster?sentinel_password=pw-in-url\nredis_wait_replicas: 1\n", nil},
		{"sentinel unsafe", "store: redis\nredis_url: redis+sentinel://h1/mymaster\nredis_unsafe: true\n", nil},
		{"cluster with wait and aof", "store: redis\nredis_url: redis://a:7000,redis://b:7001\nredis_wait_replicas: 1\nredis_wait_timeout: 500ms\nredis_wait_aof: true\n", nil},
		{"sentinel without wait", "store: redis\nredis_url: redis+sentinel://:pw-in-url@h1/mymaster\n",
			[]string{"line 8: redis_url: with Sentinel a failover loses the writes its replicas lack: set redis_wait_replicas"}},
		{"sentinel with wait 0", "store: redis\nredis_url: redis+sentinel://h1/mymaster\nredis_wait_replicas: 0\n",
			[]string{"line 9: redis_wait_replicas: with Sentinel", "redis_unsafe: true"}},
		{"cluster without wait", "store: redis\nredis_url: redis://a:7000,redis://b:7001\n",
			[]string{"line 8: redis_url: with a Redis Cluster"}},
		{"sentinel without master", "store: redis\nredis_url: redis+sentinel://:pw-in-url@h1:26379\nredis_wait_replicas: 1\n",
			[]string{"line 8: redis_url: a Sentinel URL needs the master name"}},
		{"sentinel bad port", "store: redis\nredis_url: redis+sentinel://:pw-in-url@h1:0/m\nredis_wait_replicas: 1\n",
			[]string{"line 8: redis_url: a host is not host:port"}},
		{"bad scheme", "store: redis\nredis_url: http://:pw-in-url@h1:6379\n", []string{"line 8: redis_url: must be redis://"}},
		{"negative wait", "store: redis\nredis_url: redis://h1\nredis_wait_replicas: -1\n", []string{"line 9: redis_wait_replicas: must be between 0 and 16"}},
		{"wait timeout 0", "store: redis\nredis_url: redis://h1\nredis_wait_timeout: 0s\n", []string{"line 9: redis_wait_timeout: must be between 1ms and 2s"}},
		{"wait timeout too long", "store: redis\nredis_url: redis://h1\nredis_wait_timeout: 5s\n", []string{"line 9: redis_wait_timeout"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg, err := Parse([]byte(minimal+tc.yaml), env(nil))
			if len(tc.want) == 0 {
				if err != nil {
					t.Fatal(err)
				}
				if cfg.RedisWaitTimeout <= 0 {
					t.Fatalf("redis_wait_timeout = %s", cfg.RedisWaitTimeout)
				}
				return
			}
			if err == nil {
				t.Fatal("accepted")
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not contain %q", err, w)
				}
			}
			if strings.Contains(err.Error(), secret) {
				t.Errorf("error quotes the password: %v", err)
			}
		})
	}
	cfg, err := Parse([]byte(minimal), env(nil))
	if err != nil || cfg.RedisWaitTimeout != 200*time.Millisecond || cfg.RedisWaitReplicas != 0 {
		t.Fatalf("defaults: %v %s %d", err, cfg.RedisWaitTimeout, cfg.RedisWaitReplicas)
	}
}
