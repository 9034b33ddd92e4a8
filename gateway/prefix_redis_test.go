package gateway

import (
	"context"
	"fmt"
	"strings"
	"testing"

	"github.com/mogate/mogate/adapters"
	"github.com/mogate/mogate/config"
	"github.com/mogate/mogate/matcher/redisstore/redistest"
)

// TestRedisPrefixesApart: two deployments (prod, staging) on one Redis,
// with their own redis_prefix, share no rate limit, no stream slot and no
// session: staging's budget is whole after prod spent its own, a message
// to staging verifies nothing of prod's, and every key in Redis begins with
// one of the two prefixes. Each connects as a Redis user allowed only the
// keys and channels of its prefix, as an operator may set it up.
func TestRedisPrefixesApart(t *testing.T) {
	srv := redistest.Start(t,
		"--user", "prod", "on", ">prod-pw", "~prod:*", "&prod:*", "+@all",
		"--user", "staging", "on", ">staging-pw", "~staging:eu:*", "&staging:eu:*", "+@all")
	url := func(user string) string { return "redis://" + user + ":" + user + "-pw@" + srv.Addr() }
	y := strings.Replace(testYAML, "unmatched_per_sender_per_hour: 5\n", "unmatched_per_sender_per_hour: 5\n  streams_per_key: 1\n", 1)
	y = strings.Replace(y, "creates_per_number_per_hour: 1000", "creates_per_number_per_hour: 2", 1)
	prod := redisHarnessFrom(t, y, url("prod"), "redis_prefix: prod\n")
	staging := redisHarnessFrom(t, y, url("staging"), "redis_prefix: \"staging:eu\"\n")

	var codes []int
	for _, h := range []*harness{prod, prod, prod, staging, staging, staging} {
		code, _ := h.create(shopKey, `{"number": "+14155550199"}`, nil)
		codes = append(codes, code)
	}
	if fmt.Sprint(codes) != "[201 201 429 201 201 429]" {
		t.Errorf("creates on prod then staging = %v, want each its own budget of 2", codes)
	}

	ctx := context.Background()
	release, err := prod.s.streams.perKey.take(ctx, "shop")
	if err != nil {
		t.Fatalf("prod's stream slot: %v", err)
	}
	defer release()
	if _, err := prod.s.streams.perKey.take(ctx, "shop"); err == nil {
		t.Fatal("prod's second stream got a slot beyond streams_per_key: 1")
	}
	other, err := staging.s.streams.perKey.take(ctx, "shop")
	if err != nil {
		t.Errorf("staging's stream = %v, want a slot of its own", err)
	} else {
		other()
	}

	v := prod.mustCreate(`{"number": "+14155550123"}`)
	if w := staging.send(staging.signed("twilio", adapters.Inbound{From: "+14155550123", To: v["to"].(string), Text: v["code"].(string)})); w.Code != 200 {
		t.Fatalf("webhook on staging = %d %s", w.Code, w.Body)
	}
	if got := prod.get(v["id"].(string)); got["status"] != "pending" {
		t.Errorf("prod's session after staging's message: %v, want pending", got["status"])
	}
	if w := staging.do("GET", "/v1/verifications/"+v["id"].(string), shopKey, nil, nil); w.Code != 404 {
		t.Errorf("prod's session read on staging = %d, want 404", w.Code)
	}

	// A SIGHUP does not move a running deployment to another prefix.
	next, err := config.Parse([]byte(y+"store: redis\nredis_url: "+url("prod")+"\nredis_prefix: other\n"), func(string) (string, bool) { return "", false })
	if err != nil {
		t.Fatal(err)
	}
	if err := prod.s.Reload(next); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(prod.logs.String(), "redis_prefix") {
		t.Errorf("reload changing redis_prefix logged no restart warning:\n%s", prod.logs.String())
	}
	if code, _ := prod.create(shopKey, `{"number": "+14155550199"}`, nil); code != 429 {
		t.Errorf("create after the reload = %d, want 429 (prod's spent budget)", code)
	}

	keys, err := srv.Client().Keys(ctx, "*").Result()
	if err != nil {
		t.Fatal(err)
	}
	for _, k := range keys {
		if !strings.HasPrefix(k, "prod:") && !strings.HasPrefix(k, "staging:eu:") {
			t.Errorf("key %q begins with neither prefix", k)
		}
	}
}
