package main

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/mogate/mogate/adapters/twilio"
	"github.com/mogate/mogate/matcher/redisstore/redistest"
)

// The multi-process tests: a private redis-server (AOF appendfsync always,
// never the shared one) and several `mogate serve` replicas of one
// configuration (store: redis), each on its own port behind a pretend load
// balancer whose URL the providers sign for.

const (
	replicaKey    = "replica-test-api-key-0001"
	replicaToken  = "replica-test-twilio-token"
	replicaPublic = "https://lb.example.com"
	replicaNumber = "+14155550100"
)

type replica struct {
	base string
	cfg  string
	cmd  *exec.Cmd
	out  *lockedBuffer
}

type cluster struct {
	t        *testing.T
	redis    *redistest.Server
	replicas []*replica
	client   *http.Client
}

// startReplicas starts redis and n replicas; extra is appended to every
// replica's configuration.
func startReplicas(t *testing.T, n int, extra string) *cluster {
	t.Helper()
	c := &cluster{t: t, redis: redistest.Start(t), client: &http.Client{Timeout: 20 * time.Second}}
	dir := t.TempDir()
	for i := range n {
		addr := freeAddr(t)
		cfg := filepath.Join(dir, fmt.Sprintf("replica%d.yaml", i))
		y := fmt.Sprintf(`listen: %s
public_url: %s
store: redis
redis_url: %s
api_keys: [{name: shop, key: %s}]
providers: [{name: twilio, type: twilio, auth_token: %s}]
numbers: [{number: "%s", provider: twilio, countries: ["*"]}]
`, addr, replicaPublic, c.redis.URL(), replicaKey, replicaToken, replicaNumber) + extra
		if err := os.WriteFile(cfg, []byte(y), 0o600); err != nil {
			t.Fatal(err)
		}
		r := &replica{base: "http://" + addr, cfg: cfg}
		c.replicas = append(c.replicas, r)
		c.start(r)
	}
	return c
}

func (c *cluster) start(r *replica) {
	c.t.Helper()
	r.cmd, r.out = startServer(c.t, r.cfg, r.base)
}

func (c *cluster) kill(r *replica) {
	_ = r.cmd.Process.Kill()
	_, _ = r.cmd.Process.Wait()
}

// do sends a request to a replica and decodes a JSON answer.
func (c *cluster) do(r *replica, method, path, body string, hdr http.Header) (int, map[string]any, error) {
	req, _ := http.NewRequest(method, r.base+path, strings.NewReader(body))
	req.Header.Set("Authorization", "Bearer "+replicaKey)
	for k, v := range hdr {
		req.Header[k] = v
	}
	resp, err := c.client.Do(req)
	if err != nil {
		return 0, nil, err
	}
	defer resp.Body.Close()
	var out map[string]any
	b, _ := io.ReadAll(resp.Body)
	_ = json.Unmarshal(b, &out)
	return resp.StatusCode, out, nil
}

func (c *cluster) create(r *replica, body string) map[string]any {
	c.t.Helper()
	code, out, err := c.do(r, "POST", "/v1/verifications", body, nil)
	if err != nil || code != 201 {
		c.t.Fatalf("create on %s = %d %v %v", r.base, code, out, err)
	}
	return out
}

func (c *cluster) get(r *replica, id string) map[string]any {
	c.t.Helper()
	code, out, err := c.do(r, "GET", "/v1/verifications/"+id, "", nil)
	if err != nil || code != 200 {
		c.t.Fatalf("get on %s = %d %v %v", r.base, code, out, err)
	}
	return out
}

// sms posts a Twilio webhook to a replica, signed for the public URL.
func (c *cluster) sms(r *replica, from, text, sid string) (int, string, error) {
	form := url.Values{"From": {from}, "To": {replicaNumber}, "Body": {text}, "MessageSid": {sid}, "AccountSid": {"AC1"}}
	req, _ := http.NewRequest("POST", r.base+"/webhooks/twilio", strings.NewReader(form.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("X-Twilio-Signature", twilio.Signature(replicaToken, replicaPublic+"/webhooks/twilio", form))
	resp, err := c.client.Do(req)
	if err != nil {
		return 0, "", err
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b), nil
}

// TestReplicasShareState: a create on A verifies through a webhook on B and
// is streamed on C; the same message to three replicas at once has one
// effect and the same answer; wrong codes spread over replicas fail the
// session at exactly max_attempts; an Idempotency-Key and a rate limit hold
// across replicas.
func TestReplicasShareState(t *testing.T) {
	c := startReplicas(t, 3, "limits: {creates_per_key_per_second: 0, creates_per_number_per_hour: 3, unmatched_per_sender_per_hour: 0}\n")
	a, b, cc := c.replicas[0], c.replicas[1], c.replicas[2]

	// Create on A, stream on C, verify through B.
	v := c.create(a, `{"number": "+14155550123"}`)
	id := v["id"].(string)
	req, _ := http.NewRequest("GET", cc.base+"/v1/verifications/"+id+"/events", nil)
	req.Header.Set("Authorization", "Bearer "+replicaKey)
	resp, err := c.client.Do(req)
	if err != nil || resp.StatusCode != 200 {
		t.Fatalf("SSE on C: %v %v", resp, err)
	}
	defer resp.Body.Close()
	lines := make(chan string, 16)
	go func() {
		sc := bufio.NewScanner(resp.Body)
		for sc.Scan() {
			if strings.HasPrefix(sc.Text(), "data: ") {
				lines <- sc.Text()
			}
		}
		close(lines)
	}()
	if first := <-lines; !strings.Contains(first, `"pending"`) {
		t.Fatalf("first event on C: %s", first)
	}
	sent := time.Now()
	if code, _, err := c.sms(b, "+14155550123", v["code"].(string), "SMreplica1"); err != nil || code != 200 {
		t.Fatalf("webhook on B = %d %v", code, err)
	}
	select {
	case got := <-lines:
		if !strings.Contains(got, `"verified"`) {
			t.Fatalf("C streamed %s", got)
		}
		t.Logf("C woken %v after B's 2xx", time.Since(sent))
	case <-time.After(5 * time.Second):
		t.Fatal("C's stream was not woken by the match on B")
	}
	if got := c.get(cc, id); got["status"] != "verified" || got["verified_number"] != "+14155550123" {
		t.Fatalf("read on C: %v", got)
	}

	// The same message to all three at once: one effect, the same answer.
	v2 := c.create(b, `{"number": "+14155550124"}`)
	var wg sync.WaitGroup
	answers := make([]string, 3)
	codes := make([]int, 3)
	for i, r := range c.replicas {
		wg.Add(1)
		go func() {
			defer wg.Done()
			codes[i], answers[i], _ = c.sms(r, "+14155550124", v2["code"].(string), "SMsame")
		}()
	}
	wg.Wait()
	if codes[0] != 200 || codes[1] != 200 || codes[2] != 200 || answers[0] != answers[1] || answers[1] != answers[2] {
		t.Fatalf("racing duplicates: %v %q", codes, answers)
	}
	if got := c.get(a, v2["id"].(string)); got["status"] != "verified" || got["message_id"] != "SMsame" {
		t.Fatalf("after racing duplicates: %v", got)
	}

	// Wrong codes round-robin: failed at exactly max_attempts (3).
	v3 := c.create(cc, `{"number": "+14155550125"}`)
	for i, r := range c.replicas {
		if code, _, _ := c.sms(r, "+14155550125", "000000", fmt.Sprintf("SMwrong%d", i)); code != 200 {
			t.Fatalf("wrong code %d = %d", i, code)
		}
		got := c.get(c.replicas[(i+1)%3], v3["id"].(string))
		want := "pending"
		if i == 2 {
			want = "failed"
		}
		if got["status"] != want || got["attempts"] != float64(i+1) {
			t.Fatalf("after %d wrong codes: %v", i+1, got)
		}
	}

	// Idempotency-Key across replicas.
	hdr := http.Header{"Idempotency-Key": {"order-42"}}
	var ids []string
	for _, r := range c.replicas {
		code, out, err := c.do(r, "POST", "/v1/verifications", `{"number": "+14155550126"}`, hdr)
		if err != nil || code != 201 {
			t.Fatalf("idempotent create = %d %v %v", code, out, err)
		}
		ids = append(ids, out["id"].(string))
	}
	if ids[0] != ids[1] || ids[1] != ids[2] {
		t.Fatalf("Idempotency-Key gave %v", ids)
	}

	// creates_per_number_per_hour: 3 holds for the gateway, not per replica.
	var got []int
	for i := range 4 {
		code, _, _ := c.do(c.replicas[i%3], "POST", "/v1/verifications", `{"number": "+14155550127"}`, nil)
		got = append(got, code)
	}
	if fmt.Sprint(got) != "[201 201 201 429]" {
		t.Fatalf("per-number limit across replicas: %v", got)
	}
}

// TestReplicasOneExpiredEvent: every replica sweeps, but an expired session
// makes exactly one event, delivered once; and when the replica delivering
// an event is killed mid-delivery, another delivers it.
func TestReplicasEvents(t *testing.T) {
	var mu sync.Mutex
	seen := map[string][]string{} // webhook-id -> types
	var hang atomic.Bool
	hung := make(chan struct{}, 1)
	receiver := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var ev struct{ Type string }
		_ = json.NewDecoder(r.Body).Decode(&ev)
		if hang.Load() {
			select {
			case hung <- struct{}{}:
			default:
			}
			<-r.Context().Done()
			return
		}
		mu.Lock()
		seen[r.Header.Get("webhook-id")] = append(seen[r.Header.Get("webhook-id")], ev.Type)
		mu.Unlock()
	}))
	defer receiver.Close()
	extra := "events: {allow_private_destinations: true}\n" +
		strings.Replace("api_keys: [{name: shop, key: KEY, webhook_url: URL, webhook_secret: whsec_c2hvcC1TRUNSRVRWQUxVRS13aA==}]\n", "URL", receiver.URL, 1)
	extra = strings.Replace(extra, "KEY", replicaKey, 1)
	c := startReplicas(t, 3, "")
	for _, r := range c.replicas { // the same file with events on: restart them
		c.kill(r)
		b, _ := os.ReadFile(r.cfg)
		y := strings.Replace(string(b), fmt.Sprintf("api_keys: [{name: shop, key: %s}]\n", replicaKey), extra, 1)
		if err := os.WriteFile(r.cfg, []byte(y), 0o600); err != nil {
			t.Fatal(err)
		}
		c.start(r)
	}

	v := c.create(c.replicas[0], `{"number": "+14155550130", "ttl_seconds": 1}`)
	id := v["id"].(string)
	deadline := time.Now().Add(15 * time.Second)
	for {
		mu.Lock()
		n := len(seen)
		mu.Unlock()
		if n > 0 || time.Now().After(deadline) {
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	time.Sleep(3 * time.Second) // room for a second event, were there one
	mu.Lock()
	if len(seen) != 1 {
		t.Fatalf("events for one expiry: %v", seen)
	}
	for wid, types := range seen {
		if len(types) != 1 || types[0] != "verification.expired" {
			t.Fatalf("event %s: %v", wid, types)
		}
	}
	mu.Unlock()
	if got := c.get(c.replicas[2], id); got["status"] != "expired" {
		t.Fatalf("session = %v", got)
	}

	// A replica that holds an event dies mid-delivery: another delivers it
	// once the lease (30 s) runs out.
	hang.Store(true)
	v2 := c.create(c.replicas[1], `{"number": "+14155550131"}`)
	// Only replica 1 runs while the event is made and claimed.
	c.kill(c.replicas[0])
	c.kill(c.replicas[2])
	if code, _, err := c.sms(c.replicas[1], "+14155550131", v2["code"].(string), "SMlease"); err != nil || code != 200 {
		t.Fatalf("webhook = %d %v", code, err)
	}
	select {
	case <-hung:
	case <-time.After(10 * time.Second):
		t.Fatal("replica 1 never tried the event")
	}
	c.kill(c.replicas[1])
	hang.Store(false)
	c.start(c.replicas[2])
	deadline = time.Now().Add(60 * time.Second)
	for time.Now().Before(deadline) {
		mu.Lock()
		n := len(seen)
		mu.Unlock()
		if n == 2 {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	mu.Lock()
	defer mu.Unlock()
	if len(seen) != 2 {
		t.Fatalf("the killed replica's event was not delivered by another: %v", seen)
	}
}

// createUnderLoad creates sessions from 4 goroutines, spread over two
// replicas, until stop is closed; answer sees each answer (not transport
// errors) with when its request was sent. Senders start with prefix. Wait
// on wg after closing stop. Holding gate's write lock waits for the
// requests in flight and sends no new one.
func (c *cluster) createUnderLoad(prefix string, answer func(code int, out map[string]any, sent time.Time)) (stop chan struct{}, wg *sync.WaitGroup, gate *sync.RWMutex) {
	stop, wg, gate = make(chan struct{}), &sync.WaitGroup{}, &sync.RWMutex{}
	for g := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; ; i++ {
				select {
				case <-stop:
					return
				default:
				}
				gate.RLock()
				sent := time.Now()
				code, out, err := c.do(c.replicas[(g+i)%2], "POST", "/v1/verifications", fmt.Sprintf(`{"number": "%s%03d%04d"}`, prefix, g, i), nil)
				if err == nil {
					answer(code, out, sent)
				}
				gate.RUnlock()
			}
		}()
	}
	return stop, wg, gate
}

// waitCount waits up to 20 s until n() reaches want; on a timeout it halts
// the load first.
func waitCount(t *testing.T, what string, want int, n func() int, halt func()) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for n() < want {
		if time.Now().After(deadline) {
			got := n()
			halt()
			t.Fatalf("%d %s after 20 s, want %d", got, what, want)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// TestReplicaKilledUnderLoad: kill -9 of one replica under load loses
// nothing another replica acknowledged, and nothing it acknowledged either.
func TestReplicaKilledUnderLoad(t *testing.T) {
	c := startReplicas(t, 2, "limits: {creates_per_key_per_second: 0, creates_per_number_per_hour: 0, unmatched_per_sender_per_hour: 0}\n")
	var mu sync.Mutex
	var ids []string
	stop, wg, _ := c.createUnderLoad("+1212", func(code int, out map[string]any, _ time.Time) {
		if code == 201 {
			mu.Lock()
			ids = append(ids, out["id"].(string))
			mu.Unlock()
		}
	})
	acked := func() int { mu.Lock(); defer mu.Unlock(); return len(ids) }
	halt := sync.OnceFunc(func() { close(stop); wg.Wait() })
	defer halt()
	waitCount(t, "creates acknowledged before the kill", 50, acked, halt)
	c.kill(c.replicas[0])
	before := acked()
	waitCount(t, "creates acknowledged after the kill", before+50, acked, halt)
	halt()
	if len(ids) == 0 {
		t.Fatal("nothing was acknowledged")
	}
	for _, id := range ids {
		if got := c.get(c.replicas[1], id); got["status"] != "pending" {
			t.Fatalf("acknowledged %s = %v", id, got)
		}
	}
	t.Logf("%d acknowledged creates, all there", len(ids))
}

// TestRedisDownAndBack: Redis killed under load gives 503s and a failing
// /readyz, never a 2xx; restarted from its AOF, the replicas recover by
// themselves and every acknowledged create is there. A frozen Redis
// (SIGSTOP) gives 5xx within the call deadline, never a 2xx.
func TestRedisDownAndBack(t *testing.T) {
	c := startReplicas(t, 2, "limits: {creates_per_key_per_second: 0, creates_per_number_per_hour: 0, unmatched_per_sender_per_hour: 0}\n")
	var mu sync.Mutex
	var ids []string
	// While Redis is down (unix ns, [downSince, upAgain)): no 2xx for a
	// request sent then, whenever its answer comes.
	var downSince, upAgain atomic.Int64
	var bad, refusedDown, ackedUp atomic.Int32
	stop, wg, gate := c.createUnderLoad("+1213", func(code int, out map[string]any, sent time.Time) {
		d, u := downSince.Load(), upAgain.Load()
		down := d != 0 && sent.UnixNano() >= d && (u == 0 || sent.UnixNano() < u)
		switch {
		case code == 201:
			if down {
				bad.Add(1)
			}
			if u != 0 && sent.UnixNano() >= u {
				ackedUp.Add(1)
			}
			mu.Lock()
			ids = append(ids, out["id"].(string))
			mu.Unlock()
		case code == 503:
			if down {
				refusedDown.Add(1)
			}
		default:
			t.Errorf("create = %d %v", code, out)
		}
	})
	halt := sync.OnceFunc(func() { close(stop); wg.Wait() })
	defer halt()
	waitCount(t, "creates acknowledged before the kill", 20, func() int { mu.Lock(); defer mu.Unlock(); return len(ids) }, halt)
	c.redis.Kill()
	downSince.Store(time.Now().UnixNano())
	// /readyz fails within 5 s.
	deadline := time.Now().Add(5 * time.Second)
	for {
		resp, err := http.Get(c.replicas[0].base + "/readyz")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == 503 {
				break
			}
		}
		if time.Now().After(deadline) {
			t.Fatal("/readyz still 200 5 s after Redis died")
		}
		time.Sleep(50 * time.Millisecond)
	}
	waitCount(t, "creates refused while Redis was down", 20, func() int { return int(refusedDown.Load()) }, halt)
	// No create in flight across the restart: one sent while Redis is down
	// and still waiting for it when it comes back is neither clearly
	// before nor after.
	gate.Lock()
	upAgain.Store(time.Now().UnixNano())
	c.redis.Restart()
	gate.Unlock()
	// The replicas recover by themselves within 15 s.
	deadline = time.Now().Add(15 * time.Second)
	for _, r := range c.replicas {
		for {
			resp, err := http.Get(r.base + "/readyz")
			if err == nil {
				resp.Body.Close()
				if resp.StatusCode == 200 {
					break
				}
			}
			if time.Now().After(deadline) {
				t.Fatalf("%s not ready 15 s after Redis came back", r.base)
			}
			time.Sleep(50 * time.Millisecond)
		}
	}
	waitCount(t, "creates acknowledged after the recovery", 20, func() int { return int(ackedUp.Load()) }, halt)
	halt()
	if n := bad.Load(); n > 0 {
		t.Errorf("%d creates answered 201 while Redis was down", n)
	}
	for _, id := range ids {
		if got := c.get(c.replicas[1], id); got["status"] != "pending" {
			t.Fatalf("acknowledged %s lost: %v", id, got)
		}
	}
	t.Logf("%d acknowledged creates survived the Redis crash", len(ids))

	// Frozen Redis: 5xx within the deadline, never 2xx.
	c.redis.Stop()
	defer c.redis.Cont()
	start := time.Now()
	code, out, err := c.do(c.replicas[0], "POST", "/v1/verifications", `{"number": "+14155550199"}`, nil)
	if err != nil || code < 500 {
		t.Fatalf("create against a frozen Redis = %d %v %v", code, out, err)
	}
	if took := time.Since(start); took > 15*time.Second {
		t.Fatalf("took %v", took)
	}
	code, _, _ = c.sms(c.replicas[1], "+14155550199", "123456", "SMfrozen")
	if code < 500 {
		t.Fatalf("webhook against a frozen Redis = %d", code)
	}
}
