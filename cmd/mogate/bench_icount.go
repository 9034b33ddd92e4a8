package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/mogate/mogate/matcher"
	"github.com/mogate/mogate/matcher/redisstore"
	"github.com/redis/go-redis/v9"
)

// The rows of `make bench` that count instructions with valgrind's
// callgrind instead of timing: a count is the same on any machine for the
// same binaries and input, so these rows move when the code does, not
// when the machine changes.

// icountIngests is TestCallgrindIngest's CG_PENDING, and its CG_N of the
// counted run (matcher/memstore/callgrind_test.go).
const icountIngests = 10_000

// The names of the instruction rows.
const (
	rowIngest       = "instructions per matching ingest, 10k pending (callgrind)"
	rowIngestSecond = "  same, each sender already in the 24 h counts (CG_SECOND=1)"
	rowRedisHook    = "Redis instructions per verifying webhook (store: redis, its ingest; callgrind)"
	rowRedisPair    = "Redis instructions per create+verify pair (store: redis; callgrind)"
	rowRedisBase    = "  same, minimal Lua baseline"
)

// icountRows counts instructions: a matching ingest of the memory store,
// from testBin (the go test -c binary of matcher/memstore; not run when
// empty), and what Redis runs per verifying webhook and per create+verify
// pair, from ops of each on a redis-server of its own in dir. A row whose
// count failed says why; without valgrind every row reads n/a.
func icountRows(testBin, dir string, ops int, log io.Writer) [][]string {
	vg, err := exec.LookPath("valgrind")
	if err != nil {
		var rows [][]string
		for _, name := range []string{rowIngest, rowIngestSecond, rowRedisHook, rowRedisPair, rowRedisBase} {
			rows = append(rows, []string{name, "n/a (valgrind missing)", "", ""})
		}
		return rows
	}
	var rows [][]string
	for _, second := range []bool{false, true} {
		name := rowIngest
		if second {
			name = rowIngestSecond
		}
		result := "not run: no --callgrind-test (make bench builds it)"
		if testBin != "" {
			fmt.Fprintf(log, "callgrind: TestCallgrindIngest of %s, CG_N=0 and %d, %d runs each (CG_SECOND=%v)...\n", testBin, icountIngests, icountRuns, second)
			per, lo, hi, err := callgrindIngest(vg, testBin, dir, second)
			result = fmt.Sprintf("%s (%d runs: %s–%s)", instructions(per), icountRuns, thousands(lo), thousands(hi))
			if err != nil {
				result = "failed: " + err.Error()
			}
		}
		rows = append(rows, []string{name, result, "", ""})
	}
	fmt.Fprintf(log, "callgrind: redis-server, %d verifying webhooks, %d create+verify pairs on the store and %d on the baseline...\n", ops, ops, ops)
	counts, err := callgrindRedis(vg, filepath.Join(dir, "redis-callgrind"), ops, log)
	for i, name := range []string{rowRedisHook, rowRedisPair, rowRedisBase} {
		result := fmt.Sprintf("%s (%.1f commands)", instructions(counts[i].instructions), counts[i].commands)
		if err != nil {
			result = "failed: " + err.Error()
		}
		rows = append(rows, []string{name, result, "", ""})
	}
	return rows
}

// instructions renders a count per operation, rounded, with thousands
// separators.
func instructions(v float64) string { return thousands(v) + " instructions" }

// thousands renders v rounded, with thousands separators.
func thousands(v float64) string {
	s := strconv.FormatInt(int64(v+0.5), 10)
	for i := len(s) - 3; i > 0; i -= 3 {
		s = s[:i] + "," + s[i:]
	}
	return s
}

// icountRuns is how many times each TestCallgrindIngest count is made: a
// whole-program count moves by up to 0.3% from run to run (random session
// ids and map seeds), a run's difference by up to ±50 instructions an
// ingest; the medians of 5 moved by about 1.5% between runs of the bench.
const icountRuns = 5

// callgrindIngest is the instructions of one matching ingest: the
// difference of the median whole-program counts of TestCallgrindIngest
// with CG_N=0 and with CG_N=icountIngests, divided by icountIngests, as the
// test's comment says; and the range of the runs' own differences (the
// i-th run of each).
func callgrindIngest(valgrind, testBin, dir string, second bool) (per, lo, hi float64, err error) {
	var counts [2][]int64
	for r := range icountRuns {
		for k, n := range []int{0, icountIngests} {
			out := filepath.Join(dir, fmt.Sprintf("callgrind.ingest.%d.%v.%d", n, second, r))
			cmd := exec.Command(valgrind, "--tool=callgrind", "--callgrind-out-file="+out, testBin, "-test.run=^TestCallgrindIngest$", "-test.v") //nolint:gosec // G204: valgrind from PATH on the test binary of --callgrind-test, as make bench builds it
			secondEnv := "CG_SECOND="
			if second {
				secondEnv += "1"
			}
			cmd.Env = append(os.Environ(), "CG_PENDING="+strconv.Itoa(icountIngests), "CG_N="+strconv.Itoa(n), secondEnv,
				"GOMAXPROCS=1", "GOGC=off", "GODEBUG=asyncpreemptoff=1")
			b, err := cmd.CombinedOutput()
			if err == nil && !strings.Contains(string(b), "--- PASS: TestCallgrindIngest") {
				err = errors.New("TestCallgrindIngest did not pass")
			}
			if err != nil {
				return 0, 0, 0, fmt.Errorf("%s CG_N=%d: %w: %s", filepath.Base(testBin), n, err, lastLine(b))
			}
			c, err := callgrindTotal(out)
			if err != nil {
				return 0, 0, 0, err
			}
			counts[k] = append(counts[k], c)
		}
	}
	return ingestCount(counts[0], counts[1], icountIngests)
}

// ingestCount is the instructions per operation from runs without any
// (without) and with n (with) operations: from their medians, and the
// lowest and highest of the i-th runs' differences.
func ingestCount(without, with []int64, n int) (per, lo, hi float64, err error) {
	if len(without) == 0 || len(with) != len(without) {
		return 0, 0, 0, fmt.Errorf("callgrind: %d runs without operations, %d with", len(without), len(with))
	}
	for i := range with {
		d, err := perOp(with[i], without[i], n)
		if err != nil {
			return 0, 0, 0, err
		}
		if i == 0 || d < lo {
			lo = d
		}
		hi = max(hi, d)
	}
	per, err = perOp(median(with), median(without), n)
	return per, lo, hi, err
}

// median is the middle of v (the upper one of an even count).
func median(v []int64) int64 {
	s := slices.Clone(v)
	slices.Sort(s)
	return s[len(s)/2]
}

// lastLine is the last non-empty line of b, for an error.
func lastLine(b []byte) string {
	lines := strings.Split(strings.TrimSpace(string(b)), "\n")
	return lines[len(lines)-1]
}

// perOp is the instructions per operation of n operations: with counts the
// program that makes them, without the same program making none.
func perOp(with, without int64, n int) (float64, error) {
	if n <= 0 || with < without {
		return 0, fmt.Errorf("callgrind: %d instructions with %d operations, %d without: no count per operation", with, n, without)
	}
	return float64(with-without) / float64(n), nil
}

// callgrindTotal reads a callgrind output file's total instructions: its
// summary line, which callgrind_annotate prints as PROGRAM TOTALS (a
// file without one, its totals line).
func callgrindTotal(path string) (int64, error) {
	f, err := os.Open(path)
	if err != nil {
		return 0, err
	}
	defer f.Close()
	return parseCallgrindTotal(f)
}

func parseCallgrindTotal(r io.Reader) (int64, error) {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64*1024), 1024*1024)
	total := ""
	for sc.Scan() {
		line := sc.Text()
		if v, ok := strings.CutPrefix(line, "summary:"); ok {
			total = v
			break
		}
		if v, ok := strings.CutPrefix(line, "totals:"); ok {
			total = v
		}
	}
	if err := sc.Err(); err != nil {
		return 0, err
	}
	fields := strings.Fields(total)
	if len(fields) == 0 {
		return 0, errors.New("callgrind: no summary or totals line in the output")
	}
	return strconv.ParseInt(fields[0], 10, 64) // the first event: Ir, instructions
}

// redisCount is what Redis ran per operation.
type redisCount struct {
	instructions float64
	commands     float64 // those inside functions and scripts included
}

// callgrindRedis starts redis-server with the bench's settings under
// callgrind and counts its instructions per verifying webhook (an ingest
// matching a session created before), per create+verify pair on the
// full-semantics store, and per pair on the minimal Lua baseline, ops of
// each, one at a time from one connection. The library load and a few
// warm-up calls come before the counts; Redis's own background work
// (serverCron, once a second here) is in them, and what it costs in a
// second is logged.
func callgrindRedis(valgrind, dir string, ops int, log io.Writer) ([3]redisCount, error) {
	var counts [3]redisCount
	ctl, err := exec.LookPath("callgrind_control")
	if err != nil {
		return counts, errors.New("callgrind_control missing (package valgrind)")
	}
	out := filepath.Join(dir, "callgrind.redis")
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return counts, err
	}
	// hz 1: serverCron, ~1 M instructions a second under callgrind at the
	// default hz 10, would otherwise add a few % that depend on how long
	// the operations take on this machine.
	addr, proc, stop, err := startRedisUnder([]string{valgrind, "--tool=callgrind", "--callgrind-out-file=" + out}, time.Minute, dir, "--hz", "1")
	if err != nil {
		return counts, err
	}
	defer stop()
	ctx := context.Background()
	st, err := redisstore.Open(ctx, redisstore.Options{URL: "redis://" + addr + "?pool_size=1", Timeout: time.Minute, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		return counts, err
	}
	defer st.Close()
	rdb := redis.NewClient(&redis.Options{Addr: addr, PoolSize: 1, ReadTimeout: time.Minute, WriteTimeout: time.Minute})
	defer rdb.Close()
	base := redisstore.NewBaseline(rdb)

	create := func(from string) (matcher.Session, error) {
		s, _, err := st.Create(ctx, matcher.CreateRequest{Key: "bench", Number: from, To: "+14155550100", TTL: time.Hour})
		return s, err
	}
	verify := func(s matcher.Session, from string) error {
		o, err := st.Ingest(ctx, matcher.Message{Provider: "p", MessageID: s.ID, From: from, To: "+14155550100", Text: "Your code is " + s.Code}, matcher.IngestOptions{})
		if err == nil && o.Kind != matcher.Matched {
			err = errors.New("bench: no match on the Redis store")
		}
		return err
	}
	pair := func(from string) error {
		s, err := create(from)
		if err != nil {
			return err
		}
		return verify(s, from)
	}
	basePair := func(id, from string) error {
		if err := base.Create(ctx, id, "+14155550100", from, "482913", time.Hour); err != nil {
			return err
		}
		_, err := base.Consume(ctx, "+14155550100", from, "Your code is 482913", "m"+id)
		return err
	}
	sender := func(phase, i int) string { return "+1" + strconv.Itoa(2007000000+phase*1_000_000+i) }
	for i := range 20 { // warm-up: scripts loaded, first calls made
		if err := pair(sender(0, i)); err != nil {
			return counts, err
		}
		if err := basePair("w"+strconv.Itoa(i), sender(0, 100+i)); err != nil {
			return counts, err
		}
	}
	pending := make([]matcher.Session, ops)
	for i := range ops {
		if pending[i], err = create(sender(1, i)); err != nil {
			return counts, err
		}
	}
	dumps := 0
	count := func(n int, op func(i int) error) (redisCount, error) {
		calls, _ := redisStats(addr)
		if err := exec.Command(ctl, "-z", strconv.Itoa(proc.Pid)).Run(); err != nil { //nolint:gosec // G204: callgrind_control from PATH on the redis-server started here
			return redisCount{}, fmt.Errorf("callgrind_control -z: %w", err)
		}
		start := time.Now()
		for i := range n {
			if err := op(i); err != nil {
				return redisCount{}, err
			}
		}
		if err := exec.Command(ctl, "-d", strconv.Itoa(proc.Pid)).Run(); err != nil { //nolint:gosec // G204: callgrind_control from PATH on the redis-server started here
			return redisCount{}, fmt.Errorf("callgrind_control -d: %w", err)
		}
		wall := time.Since(start)
		dumps++
		total, err := callgrindTotal(out + "." + strconv.Itoa(dumps))
		if err != nil {
			return redisCount{}, err
		}
		after, _ := redisStats(addr)
		var commands int64
		for name, c := range after {
			// Not the INFO of redisStats, nor its connection's handshake.
			if !slices.Contains([]string{"info", "hello", "client|setinfo"}, name) {
				commands += c[0] - calls[name][0]
			}
		}
		fmt.Fprintf(log, "  %d instructions, %d commands in %s\n", total, commands, wall.Round(time.Millisecond))
		return redisCount{instructions: float64(total) / float64(n), commands: float64(commands) / float64(n)}, nil
	}
	steps := []func(i int) error{
		func(i int) error { return verify(pending[i], sender(1, i)) },
		func(i int) error { return pair(sender(2, i)) },
		func(i int) error { return basePair("b"+strconv.Itoa(i), sender(3, i)) },
	}
	for k, op := range steps {
		if counts[k], err = count(ops, op); err != nil {
			return counts, err
		}
	}
	// What Redis does by itself in a second, for the log: the share of
	// the counts above that is not the operations'.
	fmt.Fprintf(log, "  idle redis-server under callgrind for 1 s (serverCron):\n")
	if _, err := count(1, func(int) error { time.Sleep(time.Second); return nil }); err != nil {
		return counts, err
	}
	return counts, nil
}
