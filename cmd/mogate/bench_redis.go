package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/mogate/mogate/config"
	"github.com/mogate/mogate/matcher"
	"github.com/mogate/mogate/matcher/redisstore"
	"github.com/redis/go-redis/v9"
)

// loadWebhooksRedis is loadWebhooks with store: redis on replicas gateways,
// each on its own listener, all sharing the Redis at addr; the requests are
// signed for one public URL, as behind a load balancer. It also says where
// the time went (see redisProbe). With wait > 0 the gateways set
// redis_wait_replicas to it (and a redis_wait_timeout of 1s); the sessions
// are those of senders from firstSender on.
func loadWebhooksRedis(addr string, replicas, wait, firstSender, conns int, d time.Duration) (loadResult, probed, error) {
	var lns []net.Listener
	var targets []string
	for range replicas {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			for _, l := range lns {
				l.Close()
			}
			return loadResult{}, probed{}, err
		}
		lns = append(lns, ln)
		targets = append(targets, "http://"+ln.Addr().String()+"/webhooks/twilio")
	}
	const public = "https://mogate.bench.invalid"
	for i, ln := range lns {
		cfg := benchConfig(public)
		cfg.Store, cfg.RedisURL = "redis", config.Secret("redis://"+addr)
		if wait > 0 {
			cfg.RedisWaitReplicas, cfg.RedisWaitTimeout = wait, config.Duration(time.Second)
		}
		_, stop, err := startGateway(cfg, ln)
		if err != nil {
			for _, l := range lns[i:] {
				l.Close()
			}
			return loadResult{}, probed{}, err
		}
		defer stop()
	}
	// Sessions are created and checked through a store of their own: the
	// state is all in Redis.
	st, err := redisstore.Open(context.Background(), redisstore.Options{URL: "redis://" + addr + "?pool_size=256", Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		return loadResult{}, probed{}, err
	}
	defer st.Close()
	// More sessions than the run can use at 6k req/s (twice what two shared
	// cores gave).
	reqs, err := prepareWebhooks(st, public+"/webhooks/twilio", 6_000*int(d.Seconds()+1), firstSender)
	if err != nil {
		return loadResult{}, probed{}, err
	}
	probe := startProbe(addr)
	res := load(targets, reqs, conns, d)
	// The gateways' outboxes deliver the run's events (nowhere: the bench
	// sets no callback): their claims and acks are part of what each
	// webhook costs Redis and the process.
	res.drain, res.left = drainOutbox(redisBacklog{st}, &res.cpu, time.Minute)
	where := probe.measure(float64(res.n), "webhook")
	// A webhook answered 503 because WAIT timed out may still have
	// verified its session.
	return res, where, checkVerified(st, reqs, res, wait > 0)
}

// redisBacklog counts a Redis store's undelivered events for drainOutbox:
// -1 when Redis does not answer.
type redisBacklog struct{ st *redisstore.Store }

func (b redisBacklog) Undelivered() int {
	n, err := b.st.Undelivered(context.Background())
	if err != nil {
		return -1
	}
	return n
}

// loadRedisSet times a plain SET from conns connections: what one write
// to this Redis costs by itself, the floor under every webhook (one
// function call each).
func loadRedisSet(addr string, conns int, d time.Duration) loadResult {
	rdb := redis.NewClient(&redis.Options{Addr: addr, PoolSize: conns})
	defer rdb.Close()
	ctx := context.Background()
	var mu sync.Mutex
	var res loadResult
	var wg sync.WaitGroup
	deadline := time.Now().Add(d)
	start := time.Now()
	for w := range conns {
		wg.Add(1)
		go func() {
			defer wg.Done()
			lat := make([]time.Duration, 0, 4096)
			errs := 0
			for i := 0; time.Now().Before(deadline); i++ {
				t0 := time.Now()
				if rdb.Set(ctx, fmt.Sprintf("bench:%d:%d", w, i), "482913", 0).Err() != nil {
					errs++
				}
				lat = append(lat, time.Since(t0))
			}
			mu.Lock()
			res.lat = append(res.lat, lat...)
			res.errs += errs
			mu.Unlock()
		}()
	}
	wg.Wait()
	res.elapsed = time.Since(start)
	res.n = len(res.lat)
	return res
}

// workloadRedis is the same on Redis.
func workloadRedis(addr string, conns int, d time.Duration) (float64, error) {
	rdb := redis.NewClient(&redis.Options{Addr: addr, PoolSize: conns})
	defer rdb.Close()
	st := redisstore.NewBaseline(rdb)
	ctx := context.Background()
	return workload(conns, d, func(i int) error {
		from := "+1" + strconv.Itoa(2004000000+i)
		id := "b" + strconv.Itoa(i)
		if err := st.Create(ctx, id, "+14155550100", from, "482913", time.Hour); err != nil {
			return err
		}
		_, err := st.Consume(ctx, "+14155550100", from, "code 482913", "m"+id)
		return err
	})
}

// workloadRedisStore is the same on the full-semantics Redis store, through
// matcher.Store: one function call per create (index, idempotency,
// counters) and one per message (dedupe, match, attempts, supersede,
// event), as the gateway makes them.
func workloadRedisStore(addr string, conns int, d time.Duration) (float64, error) {
	st, err := redisstore.Open(context.Background(), redisstore.Options{
		URL: fmt.Sprintf("redis://%s?pool_size=%d", addr, conns), Logger: slog.New(slog.DiscardHandler),
	})
	if err != nil {
		return 0, err
	}
	defer st.Close()
	ctx := context.Background()
	return workload(conns, d, func(i int) error {
		from := "+1" + strconv.Itoa(2006000000+i)
		s, _, err := st.Create(ctx, matcher.CreateRequest{Key: "bench", Number: from, To: "+14155550100", TTL: time.Hour})
		if err != nil {
			return err
		}
		o, err := st.Ingest(ctx, matcher.Message{Provider: "p", MessageID: s.ID, From: from, To: "+14155550100", Text: "code " + s.Code}, matcher.IngestOptions{})
		if err == nil && o.Kind != matcher.Matched {
			err = errors.New("bench: no match on the Redis store")
		}
		return err
	})
}

// redisFor returns addr, or starts redis-server with appendfsync always in
// dir on a spare port.
func redisFor(addr, dir string, log io.Writer) (string, func(), error) {
	if addr != "" {
		return addr, func() {}, nil
	}
	rdir := filepath.Join(dir, "redis")
	addr, stop, err := startRedisServer(rdir)
	if err != nil {
		return "", nil, err
	}
	fmt.Fprintf(log, "started redis-server on %s (appendonly yes, appendfsync always)\n", addr)
	if d, err := fsyncLatency(rdir, 200); err == nil {
		fmt.Fprintf(log, "  a 4 KiB append + fdatasync in its directory takes %s (median of 200)\n", d.Round(time.Microsecond))
	}
	return addr, stop, nil
}

// startRedisServer starts redis-server with appendfsync always in dir on a
// spare port; extra arguments (e.g. --replicaof) follow the defaults.
func startRedisServer(dir string, extra ...string) (string, func(), error) {
	addr, _, stop, err := startRedisUnder(nil, 5*time.Second, dir, extra...)
	return addr, stop, err
}

// startRedisUnder is startRedisServer with redis-server run by the command
// line wrap (e.g. valgrind and its options; none when empty), given up to
// start to answer PING. It also returns the process wrap started.
func startRedisUnder(wrap []string, start time.Duration, dir string, extra ...string) (string, *os.Process, func(), error) {
	bin, err := exec.LookPath("redis-server")
	if err != nil {
		return "", nil, nil, errors.New("redis-server is not installed (apt-get install redis-server)")
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", nil, nil, err
	}
	port := strconv.Itoa(ln.Addr().(*net.TCPAddr).Port)
	ln.Close()
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return "", nil, nil, err
	}
	args := append([]string{"--port", port, "--bind", "127.0.0.1", "--dir", dir, "--appendonly", "yes",
		"--appendfsync", "always", "--maxmemory-policy", "noeviction", "--save", "", "--daemonize", "no", "--logfile", filepath.Join(dir, "redis.log")},
		extra...)
	args = append(append(append([]string{}, wrap...), bin), args...)
	cmd := exec.Command(args[0], args[1:]...)
	if err := cmd.Start(); err != nil {
		return "", nil, nil, err
	}
	addr := "127.0.0.1:" + port
	stop := func() { _ = cmd.Process.Kill(); _ = cmd.Wait() }
	if len(wrap) > 0 {
		// Asked to end, the wrapper cleans up after itself (valgrind
		// removes its vgdb pipes in /tmp); killed only if it does not.
		stop = func() {
			done := make(chan struct{})
			go func() { _ = cmd.Wait(); close(done) }()
			_ = cmd.Process.Signal(syscall.SIGTERM)
			select {
			case <-done:
			case <-time.After(30 * time.Second):
				_ = cmd.Process.Kill()
				<-done
			}
		}
	}
	rdb := redis.NewClient(&redis.Options{Addr: addr})
	defer rdb.Close()
	for i := 0; ; i++ {
		// Ping once the port is open: go-redis logs each refused dial.
		c, err := net.DialTimeout("tcp", addr, time.Second)
		if err == nil {
			c.Close()
			err = rdb.Ping(context.Background()).Err()
		}
		if err == nil {
			break
		} else if time.Duration(i)*50*time.Millisecond > start {
			stop()
			return "", nil, nil, fmt.Errorf("redis-server did not start: %w", err)
		}
		time.Sleep(50 * time.Millisecond)
	}
	if v, _ := rdb.ConfigGet(context.Background(), "appendfsync").Result(); v["appendfsync"] != "always" {
		stop()
		return "", nil, nil, errors.New("redis-server is not running with appendfsync always")
	}
	return addr, cmd.Process, stop, nil
}

// flushAll empties the Redis the bench started, between runs (the function
// library stays loaded).
func flushAll(addr string) error {
	rdb := redis.NewClient(&redis.Options{Addr: addr})
	defer rdb.Close()
	return rdb.FlushAll(context.Background()).Err()
}

// redisProbe says where a run's time went: the commands Redis ran and the
// CPU it used per operation, and the CPU of this process, which holds the
// load generator and the gateways together on the same cores.
type redisProbe struct {
	addr     string
	start    time.Time
	calls    map[string][2]int64 // calls, µs
	redisCPU float64             // seconds
	selfCPU  time.Duration
}

func startProbe(addr string) *redisProbe {
	p := &redisProbe{addr: addr, start: time.Now(), selfCPU: selfCPU()}
	p.calls, p.redisCPU = redisStats(addr)
	return p
}

// probed is what a probe measured per operation.
type probed struct {
	commands float64       // Redis commands, those inside functions and scripts included
	redis    time.Duration // Redis's CPU
	self     time.Duration // this process's CPU
	text     string        // all of it, with each command's calls and time
}

// measure is what the run since startProbe cost per each of ops
// operations.
func (p *redisProbe) measure(ops float64, op string) probed {
	wall := time.Since(p.start).Seconds()
	self := (selfCPU() - p.selfCPU).Seconds()
	calls, cpu := redisStats(p.addr)
	cpu -= p.redisCPU
	if ops <= 0 {
		return probed{text: "no operations"}
	}
	var total float64
	var parts []string
	for name, c := range calls {
		d := float64(c[0] - p.calls[name][0])
		if name == "info" || d <= 0 || d/ops < 0.005 {
			continue
		}
		total += d
		parts = append(parts, fmt.Sprintf("%s %.2f × %.0f µs", name, d/ops, float64(c[1]-p.calls[name][1])/d))
	}
	slices.Sort(parts)
	return probed{
		commands: total / ops,
		redis:    time.Duration(1e9 * cpu / ops),
		self:     time.Duration(1e9 * self / ops),
		text: fmt.Sprintf("per %s: %.2f Redis commands, those inside functions and scripts included (%s); Redis CPU %.0f µs; this process's CPU (load generator + gateway) %.0f µs; both together kept %.2f of %d cores busy",
			op, total/ops, strings.Join(parts, ", "), 1e6*cpu/ops, 1e6*self/ops, (cpu+self)/wall, runtime.NumCPU()),
	}
}

// micros renders d in whole microseconds.
func micros(d time.Duration) string {
	return fmt.Sprintf("%.0f µs", float64(d)/float64(time.Microsecond))
}

// redisStats reads INFO: calls and µs spent per command, and the CPU
// seconds Redis used.
func redisStats(addr string) (map[string][2]int64, float64) {
	rdb := redis.NewClient(&redis.Options{Addr: addr})
	defer rdb.Close()
	info, err := rdb.Info(context.Background(), "commandstats", "cpu").Result()
	calls := map[string][2]int64{}
	var cpu float64
	if err != nil {
		return calls, 0
	}
	for _, line := range strings.Split(info, "\n") {
		line = strings.TrimSpace(line)
		if name, rest, ok := strings.Cut(line, ":"); ok {
			switch {
			case strings.HasPrefix(name, "cmdstat_"):
				var c [2]int64
				for _, kv := range strings.Split(rest, ",") {
					if v, ok := strings.CutPrefix(kv, "calls="); ok {
						c[0], _ = strconv.ParseInt(v, 10, 64)
					} else if v, ok := strings.CutPrefix(kv, "usec="); ok {
						c[1], _ = strconv.ParseInt(v, 10, 64)
					}
				}
				calls[strings.TrimPrefix(name, "cmdstat_")] = c
			case name == "used_cpu_sys" || name == "used_cpu_user":
				v, _ := strconv.ParseFloat(rest, 64)
				cpu += v
			}
		}
	}
	return calls, cpu
}

// selfCPU is the CPU time this process has used.
func selfCPU() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// fsyncLatency times a 4 KiB append and fdatasync in dir, as Redis makes on
// every write with appendfsync always: the median of n.
func fsyncLatency(dir string, n int) (time.Duration, error) {
	f, err := os.CreateTemp(dir, "fsync-probe")
	if err != nil {
		return 0, err
	}
	defer os.Remove(f.Name())
	defer f.Close()
	buf := make([]byte, 4096)
	lat := make([]time.Duration, 0, n)
	for range n {
		t0 := time.Now()
		if _, err := f.Write(buf); err != nil {
			return 0, err
		}
		if err := syscall.Fdatasync(int(f.Fd())); err != nil {
			return 0, err
		}
		lat = append(lat, time.Since(t0))
	}
	slices.Sort(lat)
	return lat[n/2], nil
}
