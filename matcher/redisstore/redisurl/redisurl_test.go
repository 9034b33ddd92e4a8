package redisurl_test

import (
	"reflect"
	"strings"
	"testing"

	"github.com/mogate/mogate/matcher/redisstore/redisurl"
)

func TestParse(t *testing.T) {
	for _, tc := range []struct {
		name string
		in   string
		want redisurl.URL
	}{
		{"single", "redis://127.0.0.1:6379/2", redisurl.URL{Kind: redisurl.Single, Addrs: []string{"127.0.0.1:6379"}, DB: 2, Raw: []string{"redis://127.0.0.1:6379/2"}}},
		{"single default port", "rediss://u:p@db.example", redisurl.URL{Kind: redisurl.Single, Addrs: []string{"db.example:6379"}, Username: "u", Password: "p", Raw: []string{"rediss://u:p@db.example"}}},
		{"cluster", "redis://a:7000, redis://b:7001", redisurl.URL{Kind: redisurl.Cluster, Addrs: []string{"a:7000", "b:7001"}, Raw: []string{"redis://a:7000", "redis://b:7001"}}},
		{"sentinel", "redis+sentinel://h1:26379,h2:26380/mymaster",
			redisurl.URL{Kind: redisurl.Sentinel, Addrs: []string{"h1:26379", "h2:26380"}, Master: "mymaster"}},
		{"sentinel password db", "redis+sentinel://:s%2Fecret@h1:26379/mymaster/3?sentinel_password=p%40ss",
			redisurl.URL{Kind: redisurl.Sentinel, Addrs: []string{"h1:26379"}, Master: "mymaster", DB: 3, Password: "s/ecret", SentinelPassword: "p@ss"}},
		{"sentinel user default port", "REDIS+SENTINEL://app:pw@[::1],h2/m?sentinel_username=sen&sentinel_password=x",
			redisurl.URL{Kind: redisurl.Sentinel, Addrs: []string{"[::1]:26379", "h2:26379"}, Master: "m", Username: "app", Password: "pw", SentinelUsername: "sen", SentinelPassword: "x"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := redisurl.Parse(tc.in)
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(got, tc.want) {
				t.Fatalf("got %+v\nwant %+v", got, tc.want)
			}
		})
	}
}

func TestParseErrors(t *testing.T) {
	const secret = "hunter2"
	for _, tc := range []struct {
		name, in, want string
	}{
		{"no master", "redis+sentinel://:hunter2@h1:26379", "needs the master name"},
		{"empty master", "redis+sentinel://:hunter2@h1:26379/", "needs the master name"},
		{"no host", "redis+sentinel://:hunter2@/m", "host is missing"},
		{"empty host between commas", "redis+sentinel://h1:26379,,h2/m", "host is missing"},
		{"bad port", "redis+sentinel://:hunter2@h1:99999/m", "port from 1 to 65535"},
		{"bad db", "redis+sentinel://:hunter2@h1/m/x", "database must be a number"},
		{"extra path", "redis+sentinel://:hunter2@h1/m/0/1", "ends with /MASTER or /MASTER/db"},
		{"unknown parameter", "redis+sentinel://h1/m?sentinel_pasword=hunter2", `unknown parameter "sentinel_pasword"`},
		{"other sentinel scheme", "rediss+sentinel://:hunter2@h1/m", "only redis+sentinel://"},
		{"wrong scheme", "http://:hunter2@h1:6379", "must be redis://"},
		{"cluster wrong scheme", "redis://a:1,tcp://:hunter2@b:2", "must be redis://"},
		{"bad url", "redis://:hunter2@h1:port", "not a valid URL"},
		{"single bad db", "redis://:hunter2@h1:6379/zero", "database must be a number"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := redisurl.Parse(tc.in)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("got %v, want an error containing %q", err, tc.want)
			}
			if strings.Contains(err.Error(), secret) {
				t.Fatalf("the error quotes the password: %v", err)
			}
		})
	}
}
