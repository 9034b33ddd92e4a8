package main

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"runtime"
	"runtime/pprof"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gin-gonic/gin"
	"github.com/mogate/mogate/adapters/twilio"
	"github.com/mogate/mogate/cmd/mogate/app"
	"github.com/mogate/mogate/config"
	"github.com/mogate/mogate/gateway"
	"github.com/mogate/mogate/matcher"
	"github.com/mogate/mogate/matcher/memstore"
)

// bench runs the loopback load measurements of `make bench` and prints them,
// with the Go benchmark results of --gobench, as one table.
func bench(args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("bench", flag.ContinueOnError)
	fs.SetOutput(stderr)
	conns := fs.Int("conns", 64, "concurrent connections (and workers)")
	duration := fs.Duration("duration", 5*time.Second, "length of each load run")
	goBench := fs.String("gobench", "", "go test -bench output to include in the table")
	redisAddr := fs.String("redis", "", "Redis with appendfsync always to compare with, never flushed (default: start redis-server on a spare port, flushed between runs)")
	cpuProfile := fs.String("cpuprofile", "", "write a CPU profile of the whole run to this file")
	hookProfile := fs.String("cpuprofile-webhooks", "", "write a CPU profile of the WAL webhook load run alone (its requests and the delivery of their events, not their set-up) to this file")
	cgTest := fs.String("callgrind-test", "", "the go test -c binary of matcher/memstore: valgrind's callgrind counts the instructions of its TestCallgrindIngest")
	cgOps := fs.Int("callgrind-ops", 1000, "operations of each kind whose instructions callgrind counts on a redis-server of its own")
	only := fs.String("only", "", "run one part: icount (instruction counts under valgrind's callgrind), load (empty handler, gateway on the WAL), store (create+verify pairs), "+
		"replicas (gateway on Redis) or wait (gateway on Redis with and without redis_wait_replicas: 1; a replica is started, or with --redis must be connected already)")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if !slices.Contains([]string{"", "icount", "load", "store", "replicas", "wait"}, *only) {
		fs.Usage()
		return usageErr("bench: --only %q: want icount, load, store, replicas or wait", *only)
	}
	if *cgOps <= 0 {
		return usageErr("bench: --callgrind-ops %d: want at least 1", *cgOps)
	}
	if *cpuProfile != "" && *hookProfile != "" {
		return usageErr("bench: --cpuprofile and --cpuprofile-webhooks: one profile at a time")
	}
	if *hookProfile != "" && *only != "" && *only != "load" {
		return usageErr("bench: --cpuprofile-webhooks profiles the WAL webhook run, which --only %s does not make", *only)
	}
	stopProfile, err := startProfile(*cpuProfile)
	if err != nil {
		return err
	}
	defer func() { _ = stopProfile() }()
	tmp, err := os.MkdirTemp("", "mogate-bench")
	if err != nil {
		return err
	}
	defer os.RemoveAll(tmp)
	var rows [][]string
	if *goBench != "" {
		rows, err = goBenchRows(*goBench)
		if err != nil {
			return err
		}
	}

	if *only == "" || *only == "icount" {
		rows = append(rows, icountRows(*cgTest, tmp, *cgOps, stderr)...)
	}
	if *only == "icount" {
		printTable(stdout, rows)
		return nil
	}
	if *only == "" || *only == "load" {
		fmt.Fprintf(stderr, "load: empty Gin handler, %d connections, %s...\n", *conns, *duration)
		ceilingSlots := runtime.GOMAXPROCS(0)
		ceiling, err := loadEmpty(*conns, *duration)
		if err != nil {
			return err
		}
		var hooks loadResult
		slots, err := withSlots("memory", os.LookupEnv, func() error {
			fmt.Fprintf(stderr, "load: signed Twilio webhooks verifying sessions durably (GOMAXPROCS %d, as mogate serve sets it for store: memory)...\n", runtime.GOMAXPROCS(0))
			var err error
			hooks, err = loadWebhooks(filepath.Join(tmp, "gateway"), *conns, *duration, *hookProfile)
			return err
		})
		if err != nil {
			return err
		}
		ratio := hooks.rate() / ceiling.rate()
		rows = append(rows,
			[]string{"load: empty Gin handler (ceiling)", ceiling.String(), "", ""},
			[]string{"load: signed Twilio webhook → durable verify (WAL)", hooks.String(), "", ""},
			[]string{"  ratio webhook / ceiling", fmt.Sprintf("%.0f%%", 100*ratio), "≥ 40%", met(ratio >= 0.40)},
			[]string{"  process CPU per request, ceiling / webhook (its event delivered)", micros(ceiling.cpuPerRequest()) + " / " + micros(hooks.cpuPerRequest()), "", ""},
			[]string{"  GOMAXPROCS, ceiling / webhook (mogate serve's, store: memory)", fmt.Sprintf("%d / %d", ceilingSlots, slots), "", ""},
			[]string{"  the webhook run's events, undelivered after it", hooks.backlog(), "none within 1 s", met(hooks.left == 0 && hooks.drain <= time.Second)},
		)
	}
	if *only == "load" {
		printTable(stdout, rows)
		return nil
	}
	addr, stop, err := redisFor(*redisAddr, tmp, stderr)
	if err != nil {
		rows = append(rows, []string{"create+verify on Redis (appendfsync always)", "not run: " + err.Error(), "", ""})
		printTable(stdout, rows)
		return nil
	}
	defer stop()
	flushRedis := func(addr string) error {
		if *redisAddr != "" {
			return nil // not ours to empty
		}
		return flushAll(addr)
	}
	if *only == "" || *only == "store" {
		fmt.Fprintf(stderr, "store: create+verify on the WAL matcher and on Redis at %s...\n", addr)
		var mine float64
		_, err := withSlots("memory", os.LookupEnv, func() error {
			var err error
			mine, err = workloadMatcher(filepath.Join(tmp, "matcher"), *conns, *duration)
			return err
		})
		if err != nil {
			return err
		}
		if err := flushRedis(addr); err != nil {
			return err
		}
		probe := startProbe(addr)
		theirs, err := workloadRedis(addr, *conns, *duration)
		if err != nil {
			return err
		}
		base := probe.measure(theirs*duration.Seconds(), "pair")
		fmt.Fprintf(stderr, "  minimal Lua baseline: %s\n", base.text)
		if err := flushRedis(addr); err != nil {
			return err
		}
		probe = startProbe(addr)
		full, err := workloadRedisStore(addr, *conns, *duration)
		if err != nil {
			return err
		}
		cost := probe.measure(full*duration.Seconds(), "pair")
		fmt.Fprintf(stderr, "  full-semantics store: %s\n", cost.text)
		r := mine / theirs
		f := full / theirs
		rows = append(rows,
			[]string{"create+verify, WAL matcher (64 workers)", fmt.Sprintf("%.0f pairs/s", mine), "", ""},
			[]string{"create+verify, Redis appendfsync always + Lua (minimal)", fmt.Sprintf("%.0f pairs/s", theirs), "", ""},
			[]string{"  ratio matcher / Redis", fmt.Sprintf("%.1f×", r), "≥ 3×", met(r >= 3)},
			[]string{"create+verify, Redis store, full semantics", fmt.Sprintf("%.0f pairs/s", full), "", ""},
			[]string{"  ratio full semantics / Lua baseline", fmt.Sprintf("%.0f%%", 100*f), "≥ 70%", met(f >= 0.70)},
			[]string{"  Redis CPU per pair, full store vs baseline", fmt.Sprintf("%s vs %s (%.1f vs %.1f commands)", micros(cost.redis), micros(base.redis), cost.commands, base.commands),
				"≤ 60 µs", met(cost.redis <= 60*time.Microsecond)},
			[]string{"  bench process CPU per pair (client side), full store vs baseline", fmt.Sprintf("%s vs %s", micros(cost.self), micros(base.self)),
				"≤ 60 µs", met(cost.self <= 60*time.Microsecond)},
		)
	}
	if *only == "" || *only == "replicas" {
		if err := flushRedis(addr); err != nil {
			return err
		}
		fmt.Fprintf(stderr, "load: Redis SET alone, %d connections...\n", *conns)
		set := loadRedisSet(addr, *conns, *duration/2)
		rows = append(rows, []string{"load: Redis SET alone (one fsync'd write each)", set.String(), "", ""})
		for _, n := range []int{1, 3} {
			if err := flushRedis(addr); err != nil {
				return err
			}
			fmt.Fprintf(stderr, "load: signed Twilio webhooks on %d gateway replica(s) sharing Redis at %s...\n", n, addr)
			res, where, err := loadWebhooksRedis(addr, n, 0, 2005000000+1_000_000*n, *conns, *duration)
			if err != nil {
				return err
			}
			fmt.Fprintf(stderr, "  %s\n", where.text)
			if n == 1 {
				p99 := res.quantile(0.99)
				rows = append(rows, []string{"load: signed Twilio webhook → Redis store, 1 replica", res.String(),
					fmt.Sprintf("p99 ≤ 20 ms at %d conns", *conns), met(p99 <= 20*time.Millisecond)},
					[]string{"  Redis CPU per webhook (store: redis), its event delivered", fmt.Sprintf("%s, %.1f commands", micros(where.redis), where.commands),
						"≤ 40 µs", met(where.redis <= 40*time.Microsecond)},
					[]string{"  the webhook run's events on Redis, undelivered after it", res.backlog(), "none within 1 s", met(res.left == 0 && res.drain <= time.Second)},
					[]string{"  process CPU per webhook (gateway + load generator)", micros(where.self), "", ""})
			} else {
				rows = append(rows, []string{fmt.Sprintf("load: same, %d replicas round-robin, one Redis", n), res.String(), "", ""})
			}
		}
	}
	if *only == "" || *only == "wait" {
		waitRows, err := benchWait(addr, *redisAddr != "", tmp, *conns, *duration, stderr, flushRedis)
		if err != nil {
			return err
		}
		rows = append(rows, waitRows...)
	}
	printTable(stdout, rows)
	return nil
}

func met(ok bool) string {
	if ok {
		return "met"
	}
	return "MISSED"
}

// targets are the goals of docs/performance.md for the Go benchmarks, keyed by
// benchmark name.
var targets = map[string]struct {
	unit  string
	limit float64
	less  bool
	text  string
}{
	"BenchmarkLookupConsume/pending=10000":   {"ns/op", 500, true, "≤ 500 ns, ≤ 1 alloc"},
	"BenchmarkWALAppend/writers=64":          {"records/s", 200_000, false, "≥ 200,000 records/s"},
	"BenchmarkRecovery1M/pending":            {"s/recovery", 1, true, "≤ 1 s"},
	"BenchmarkRecovery1M/day":                {"s/recovery", 1, true, "≤ 1 s"},
	"BenchmarkRestart1M/pending":             {"s/restart", 1, true, "≤ 1 s"},
	"BenchmarkRestart1M/day":                 {"s/restart", 1, true, "≤ 1 s"},
	"BenchmarkMemoryPerSession/gateway":      {"bytes/session", 300, true, "≤ 300 bytes"},
	"BenchmarkMemoryPerSession/contiguity":   {"bytes/session", 300, true, "≤ 300 bytes"},
	"BenchmarkMemoryPerSession/bare":         {"bytes/session", 300, true, "≤ 300 bytes"},
	"BenchmarkLookupConsume/pending=1000000": {"ns/op", 500, true, "≤ 500 ns, ≤ 1 alloc"},
}

func goBenchRows(path string) ([][]string, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	var rows [][]string
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		if len(fields) < 3 || !strings.HasPrefix(fields[0], "Benchmark") {
			continue
		}
		name := fields[0]
		if i := strings.LastIndexByte(name, '-'); i > 0 {
			name = name[:i]
		}
		metrics := map[string]float64{}
		var parts []string
		for i := 2; i+1 < len(fields); i += 2 {
			v, err := strconv.ParseFloat(fields[i], 64)
			if err != nil {
				continue
			}
			metrics[fields[i+1]] = v
			if fields[i+1] == "B/op" {
				continue
			}
			parts = append(parts, fields[i]+" "+fields[i+1])
		}
		row := []string{name, strings.Join(parts, ", "), "", ""}
		if t, ok := targets[name]; ok {
			// A benchmark that no longer reports its target's unit misses
			// it: a renamed metric must not read as 0, under every limit.
			v, ok := metrics[t.unit]
			if ok && t.less {
				ok = v <= t.limit
			} else if ok {
				ok = v >= t.limit
			}
			if t.unit == "ns/op" && metrics["allocs/op"] > 1 {
				ok = false
			}
			row[2], row[3] = t.text, met(ok)
		}
		rows = append(rows, row)
	}
	return rows, sc.Err()
}

func printTable(w io.Writer, rows [][]string) {
	widths := []int{0, 0, 0, 0}
	head := []string{"measure", "result", "target", ""}
	for _, r := range append([][]string{head}, rows...) {
		for i, c := range r {
			widths[i] = max(widths[i], len([]rune(c)))
		}
	}
	line := func(r []string) {
		var b strings.Builder
		for i, c := range r {
			b.WriteString("| " + c + strings.Repeat(" ", widths[i]-len([]rune(c))) + " ")
		}
		fmt.Fprintln(w, b.String()+"|")
	}
	line(head)
	sep := make([]string, 4)
	for i := range sep {
		sep[i] = strings.Repeat("-", widths[i])
	}
	line(sep)
	for _, r := range rows {
		line(r)
	}
}

// loadResult is one load run.
type loadResult struct {
	n, errs int
	elapsed time.Duration
	lat     []time.Duration
	cpu     time.Duration // this process's CPU during the run (server and load generator), and while its events drained
	drain   time.Duration // how long the outbox took to empty after the run
	left    int           // events still undelivered when the drain gave up; -1 when the store does not say
}

func (r loadResult) rate() float64 { return float64(r.n) / r.elapsed.Seconds() }

// cpuPerRequest is the process's CPU per request answered: on a machine
// shared with other work, steadier than the rate.
func (r loadResult) cpuPerRequest() time.Duration {
	if r.n == 0 {
		return 0
	}
	return r.cpu / time.Duration(r.n)
}

// quantile is the latency below which a fraction p of the requests took.
func (r loadResult) quantile(p float64) time.Duration {
	if len(r.lat) == 0 {
		return 0
	}
	slices.Sort(r.lat)
	return r.lat[int(p*float64(len(r.lat)-1))]
}

// timing is the rate and latencies, without the errors.
func (r loadResult) timing() string {
	return fmt.Sprintf("%.0f req/s, p50 %s, p99 %s", r.rate(), r.quantile(0.50).Round(time.Microsecond), r.quantile(0.99).Round(time.Microsecond))
}

// backlog says how long the outbox took to empty after the run.
func (r loadResult) backlog() string {
	if r.left < 0 {
		return "not measured: the store does not count its undelivered events, or did not answer"
	}
	if r.left > 0 {
		return fmt.Sprintf("%d still undelivered %s after the run", r.left, r.drain.Round(time.Millisecond))
	}
	return "delivered within " + r.drain.Round(time.Millisecond).String()
}

func (r loadResult) String() string {
	s := r.timing()
	if r.errs > 0 {
		s += fmt.Sprintf(", %d errors", r.errs)
	}
	return s
}

type prepared struct {
	body      []byte
	signature string // X-Twilio-Signature, if any
}

// load sends prepared requests from conns workers, each on its own
// connection, until duration passes or the requests run out, and times each
// one. The workers are spread round-robin over targets (one URL each), as a
// TCP load balancer spreads connections over replicas.
func load(targets []string, reqs []prepared, conns int, duration time.Duration) loadResult {
	tr := &http.Transport{MaxIdleConnsPerHost: conns, MaxConnsPerHost: conns, DisableCompression: true}
	defer tr.CloseIdleConnections()
	client := &http.Client{Transport: tr, Timeout: 30 * time.Second}
	var next atomic.Int64
	var mu sync.Mutex
	var res loadResult
	deadline := time.Now().Add(duration)
	var wg sync.WaitGroup
	start, cpu := time.Now(), selfCPU()
	for w := range conns {
		target := targets[w%len(targets)]
		wg.Add(1)
		go func() {
			defer wg.Done()
			lat := make([]time.Duration, 0, 4096)
			errs := 0
			for time.Now().Before(deadline) {
				i := int(next.Add(1)) - 1
				if i >= len(reqs) {
					break
				}
				req, _ := http.NewRequest("POST", target, bytes.NewReader(reqs[i].body))
				req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
				if reqs[i].signature != "" {
					req.Header.Set("X-Twilio-Signature", reqs[i].signature)
				}
				t0 := time.Now()
				resp, err := client.Do(req)
				if err == nil {
					_, _ = io.Copy(io.Discard, resp.Body)
					resp.Body.Close()
				}
				lat = append(lat, time.Since(t0))
				if err != nil || resp.StatusCode != 200 {
					errs++
				}
			}
			mu.Lock()
			res.lat = append(res.lat, lat...)
			res.errs += errs
			mu.Unlock()
		}()
	}
	wg.Wait()
	res.elapsed, res.cpu = time.Since(start), selfCPU()-cpu
	res.n = len(res.lat)
	return res
}

func serveLoopback(h http.Handler) (string, func(), error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", nil, err
	}
	srv := &http.Server{Handler: h, ReadHeaderTimeout: 10 * time.Second}
	go func() { _ = srv.Serve(ln) }()
	return "http://" + ln.Addr().String(), func() { _ = srv.Close() }, nil
}

// loadEmpty is the ceiling: Gin answering 200 to a form POST, nothing else.
func loadEmpty(conns int, d time.Duration) (loadResult, error) {
	gin.SetMode(gin.ReleaseMode)
	e := gin.New()
	e.POST("/webhooks/twilio", func(c *gin.Context) { c.Status(http.StatusOK) })
	base, stop, err := serveLoopback(e)
	if err != nil {
		return loadResult{}, err
	}
	defer stop()
	reqs := make([]prepared, 100_000*int(d.Seconds()+1))
	body := []byte("MessageSid=SM1&From=%2B14155550123&To=%2B14155550100&Body=482913")
	for i := range reqs {
		reqs[i] = prepared{body: body}
	}
	return load([]string{base + "/webhooks/twilio"}, reqs, conns, d), nil
}

const benchToken = "bench-twilio-auth-token" //nolint:gosec // G101: the load run's own throwaway gateway

// benchConfig is the gateway of the load runs: one Twilio number, one API
// key, and the default limits, so that a webhook costs what it costs a
// real deployment (the sender's budgets: gateway/webhooks.go ingest). No
// limit is hit: the load runs create their sessions through the store, not
// the API, and each of their senders sends one message.
func benchConfig(publicURL string) config.Config {
	cfg := config.Default()
	cfg.PublicURL = publicURL
	cfg.APIKeys = []config.APIKey{{Name: "bench", Key: "bench-api-key-0000000001"}}
	cfg.Providers = []config.Provider{{Name: "twilio", Type: "twilio", AuthToken: config.Secret(benchToken)}}
	cfg.Numbers = []config.Number{{Number: "+14155550100", Provider: "twilio", Countries: []string{"*"}, Weight: 1}}
	return cfg
}

// startGateway serves cfg on ln until the returned stop is called; the
// store is the one the gateway runs on.
func startGateway(cfg config.Config, ln net.Listener) (matcher.Store, func(), error) {
	if err := cfg.Validate(); err != nil {
		return nil, nil, err
	}
	srv, st, err := app.New(gateway.Options{Config: cfg, Logger: slog.New(slog.DiscardHandler)}, false)
	if err != nil {
		return nil, nil, err
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		_ = srv.Serve(ctx, ln, 10*time.Second) // the load run has ended: how it stopped does not matter
	}()
	return st.Store, func() { cancel(); <-done }, nil
}

// loadWebhooks runs the real gateway with its durable matcher: every request
// is a signed Twilio webhook that verifies one pre-created session. With a
// profile path, the CPU profile of the run's window (the requests and the
// delivery of their events) is written there.
func loadWebhooks(dir string, conns int, d time.Duration, profile string) (loadResult, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return loadResult{}, err
	}
	base := "http://" + ln.Addr().String()
	cfg := benchConfig(base)
	cfg.DataDir = dir
	st, stop, err := startGateway(cfg, ln)
	if err != nil {
		ln.Close()
		return loadResult{}, err
	}
	defer stop()
	// More sessions than the run can use at 25k req/s.
	reqs, err := prepareWebhooks(st, base+"/webhooks/twilio", 25_000*int(d.Seconds()+1), 2002000000)
	if err != nil {
		return loadResult{}, err
	}
	stopProfile, err := startProfile(profile)
	if err != nil {
		return loadResult{}, err
	}
	res := load([]string{base + "/webhooks/twilio"}, reqs, conns, d)
	res.drain, res.left = drainOutbox(st, &res.cpu, time.Minute)
	if err := stopProfile(); err != nil {
		return res, err
	}
	return res, checkVerified(st, reqs, res, false)
}

// startProfile starts a CPU profile written to path, if any; the function
// returned stops it.
func startProfile(path string) (func() error, error) {
	if path == "" {
		return func() error { return nil }, nil
	}
	f, err := os.Create(path)
	if err != nil {
		return nil, err
	}
	if err := pprof.StartCPUProfile(f); err != nil {
		f.Close()
		return nil, err
	}
	return func() error {
		pprof.StopCPUProfile()
		return f.Close()
	}, nil
}

// drainOutbox waits until the store holds no undelivered event, at most
// limit, and adds the CPU spent meanwhile to cpu: a verification's work is
// done when its event has left the outbox, not when its webhook is
// answered. A gateway whose outbox fell behind once looked cheap here while
// minutes of acks were still to come.
func drainOutbox(st any, cpu *time.Duration, limit time.Duration) (took time.Duration, left int) {
	u, ok := st.(interface{ Undelivered() int })
	if !ok {
		return 0, -1 // not measured
	}
	start, c0 := time.Now(), selfCPU()
	defer func() { *cpu += selfCPU() - c0 }()
	for {
		left = u.Undelivered()
		if left <= 0 || time.Since(start) > limit { // < 0: the store could not say
			return time.Since(start), left
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// prepareWebhooks creates n sessions and signs, for signedURL, the Twilio
// webhook that verifies each: all before the clock starts.
func prepareWebhooks(st matcher.Store, signedURL string, n, firstSender int) ([]prepared, error) {
	reqs := make([]prepared, n)
	ctx := context.Background()
	var next atomic.Int64
	var wg sync.WaitGroup
	var firstErr atomic.Value
	for range 256 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := int(next.Add(1)) - 1; i < n; i = int(next.Add(1)) - 1 {
				from := "+1" + strconv.Itoa(firstSender+i)
				s, _, err := st.Create(ctx, matcher.CreateRequest{Key: "bench", Number: from, To: "+14155550100", TTL: time.Hour})
				if err != nil {
					firstErr.Store(err)
					return
				}
				form := url.Values{"MessageSid": {"SM" + s.ID}, "AccountSid": {"AC1"}, "From": {from}, "To": {"+14155550100"}, "Body": {"Your code is " + s.Code}}
				reqs[i] = prepared{body: []byte(form.Encode()), signature: twilio.Signature(benchToken, signedURL, form)}
			}
		}()
	}
	wg.Wait()
	if err, ok := firstErr.Load().(error); ok {
		return nil, err
	}
	return reqs, nil
}

// checkVerified makes sure that every answered webhook verified its session
// and, unless a failed one may have verified it anyway (mayStand), that no
// other did.
func checkVerified(st matcher.Store, reqs []prepared, res loadResult, mayStand bool) error {
	ctx := context.Background()
	var verified atomic.Int64
	var next atomic.Int64
	var wg sync.WaitGroup
	for range 64 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := int(next.Add(1)) - 1; i < res.n; i = int(next.Add(1)) - 1 {
				q, _ := url.ParseQuery(string(reqs[i].body))
				if s, err := st.Get(ctx, strings.TrimPrefix(q.Get("MessageSid"), "SM")); err == nil && s.Status == matcher.Verified {
					verified.Add(1)
				}
			}
		}()
	}
	wg.Wait()
	if v := int(verified.Load()); v < res.n-res.errs || (v > res.n-res.errs && !mayStand) {
		return fmt.Errorf("bench: %d webhooks answered 200 but %d sessions verified", res.n-res.errs, v)
	}
	return nil
}

// workloadMatcher is create then verify, per worker, on the WAL matcher.
func workloadMatcher(dir string, conns int, d time.Duration) (float64, error) {
	m, err := memstore.Open(dir, memstore.Options{}, memstore.DurableOptions{})
	if err != nil {
		return 0, err
	}
	defer m.Close()
	return workload(conns, d, func(i int) error {
		from := "+1" + strconv.Itoa(2003000000+i)
		s, _, err := m.Create(context.Background(), matcher.CreateRequest{Key: "bench", Number: from, To: "+14155550100", TTL: time.Hour})
		if err != nil {
			return err
		}
		o, err := m.Ingest(context.Background(), matcher.Message{Provider: "p", MessageID: s.ID, From: from, To: "+14155550100", Text: "code " + s.Code}, matcher.IngestOptions{})
		if err == nil && o.Kind != matcher.Matched {
			err = errors.New("bench: no match")
		}
		return err
	})
}

func workload(conns int, d time.Duration, op func(i int) error) (float64, error) {
	var next atomic.Int64
	var firstErr atomic.Value
	deadline := time.Now().Add(d)
	var wg sync.WaitGroup
	start := time.Now()
	for range conns {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for time.Now().Before(deadline) {
				if err := op(int(next.Add(1))); err != nil {
					firstErr.Store(err)
					return
				}
			}
		}()
	}
	wg.Wait()
	if err, ok := firstErr.Load().(error); ok {
		return 0, err
	}
	return float64(next.Load()) / time.Since(start).Seconds(), nil
}
