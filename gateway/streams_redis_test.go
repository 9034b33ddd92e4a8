package gateway

import (
	"context"
	"errors"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/mogate/mogate/matcher/redisstore/redistest"
	"github.com/redis/go-redis/v9"
)

// TestRedisStreamCapsAcrossReplicas: with store: redis, streams_per_key
// and page_streams_per_session hold for the gateway, not per replica: with
// caps of 2, a stream on each of two replicas fills a key (or a page), the
// third on either is 429, and closing one frees a slot for either. Page
// streams never count against the key there either.
func TestRedisStreamCapsAcrossReplicas(t *testing.T) {
	srv := redistest.Start(t)
	y := strings.Replace(testYAML, "unmatched_per_sender_per_hour: 5\n",
		"unmatched_per_sender_per_hour: 5\n  streams_per_key: 2\n  page_streams_per_session: 2\n", 1)
	a, b := redisHarnessFrom(t, y, srv.URL(), ""), redisHarnessFrom(t, y, srv.URL(), "")
	baseA, baseB := serveHTTP(t, a), serveHTTP(t, b)
	v1 := a.mustCreate(`{"number": "+14155550141"}`)
	v2 := a.mustCreate(`{"number": "+14155550142"}`)
	v3 := a.mustCreate(`{"number": "+14155550143"}`)
	events := func(base string, v map[string]any) string {
		return base + "/v1/verifications/" + v["id"].(string) + "/events"
	}

	code, closeOnA := holdOpen(t, events(baseA, v1), shopKey)
	if code != 200 {
		t.Fatalf("stream on a = %d", code)
	}
	if code, _ := holdOpen(t, events(baseB, v2), shopKey); code != 200 {
		t.Fatalf("stream on b = %d", code)
	}
	mustRefuse(t, events(baseA, v3), shopKey)
	mustRefuse(t, events(baseB, v3), shopKey)
	mustRefuse(t, baseB+"/v1/verifications/"+v3["id"].(string)+"?wait=5s", shopKey)
	_, o := a.create(otherKey, `{"number": "+14155550144"}`, nil)
	if code, _ := holdOpen(t, events(baseB, o), otherKey); code != 200 {
		t.Fatalf("another key's stream = %d", code)
	}

	// The page of v1: two streams over the two replicas fill it, while the
	// key is full; a third is 429 on either.
	for _, base := range []string{baseA, baseB} {
		if code, _ := holdOpen(t, base+pagePath(t, v1)+"/events", ""); code != 200 {
			t.Fatalf("page stream on %s = %d", base, code)
		}
	}
	mustRefuse(t, baseA+pagePath(t, v1)+"/events", "")
	mustRefuse(t, baseB+pagePath(t, v1)+"/events", "")
	if code, _ := holdOpen(t, baseB+pagePath(t, v2)+"/events", ""); code != 200 {
		t.Fatalf("another page = %d", code)
	}

	// Closing the stream on a frees its slot for b.
	closeOnA()
	eventually(t, "a slot freed on a to be usable on b", func() bool {
		code, _ := holdOpen(t, events(baseB, v3), shopKey)
		return code == 200
	})
	mustRefuse(t, events(baseA, v1), shopKey)
}

// TestRedisStreamLeases: a slot's lease is renewed while its stream is
// open, and the slots of a replica that died without releasing them (here
// written straight into Redis, as it left them) free themselves when their
// leases end.
func TestRedisStreamLeases(t *testing.T) {
	srv := redistest.Start(t)
	y := strings.Replace(testYAML, "unmatched_per_sender_per_hour: 5\n", "unmatched_per_sender_per_hour: 5\n  streams_per_key: 1\n", 1)
	h := redisHarnessFrom(t, y, srv.URL(), "")
	slots := h.s.streams.perKey.(*sharedSlots)
	slots.lease, slots.renew = 600*time.Millisecond, 100*time.Millisecond // before the first request
	base := serveHTTP(t, h)
	v := h.mustCreate(`{"number": "+14155550145"}`)
	events := base + "/v1/verifications/" + v["id"].(string) + "/events"

	if code, _ := holdOpen(t, events, shopKey); code != 200 {
		t.Fatalf("stream = %d", code)
	}
	// Several leases later (time passing is what is tested here) the open
	// stream still holds its slot.
	time.Sleep(3 * slots.lease)
	mustRefuse(t, events, shopKey)

	// A dead replica's slot of key other, its lease ending soon.
	ctx := context.Background()
	now, err := srv.Client().Time(ctx).Result()
	if err != nil {
		t.Fatal(err)
	}
	if err := srv.Client().ZAdd(ctx, "mogate:limit:streams-per-key:other", redis.Z{Score: float64(now.Add(slots.lease).UnixMilli()), Member: "dead-replica"}).Err(); err != nil {
		t.Fatal(err)
	}
	_, o := h.create(otherKey, `{"number": "+14155550146"}`, nil)
	mustRefuse(t, base+"/v1/verifications/"+o["id"].(string)+"/events", otherKey)
	eventually(t, "the dead replica's slot to free itself", func() bool {
		code, _ := holdOpen(t, base+"/v1/verifications/"+o["id"].(string)+"/events", otherKey)
		return code == 200
	})
}

// TestRedisStreamSlotsFailClosed: when Redis cannot count the slots, a
// stream is refused with 503, never let through uncounted.
func TestRedisStreamSlotsFailClosed(t *testing.T) {
	srv := redistest.Start(t)
	h := redisHarness(t, srv.URL(), "")
	srv.Kill()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	for name, hold := range map[string]func(context.Context, string) (func(), error){
		"key": h.s.holdKeyStream, "page": h.s.holdPageStream,
	} {
		_, err := hold(ctx, "shop")
		if ae := toAPIError(err); !errors.Is(err, errUnavailable) || ae == nil || ae.Status != http.StatusServiceUnavailable {
			t.Errorf("%s stream with Redis down = %v, want 503", name, err)
		}
	}
}
