package main

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// cgDump is the start and end of a dump that callgrind_control -d made of
// a redis-server (valgrind 3.19): its summary is the count, not its
// totals line.
const cgDump = `# callgrind format
version: 1
creator: callgrind-3.19.0
pid: 14510
cmd:  redis-server --port 16391 --bind 127.0.0.1 --dir /tmp/h3/r --appendonly yes --appendfsync always --save  --daemonize no --logfile /tmp/h3/r/redis.log
part: 1


desc: I1 cache: 
desc: D1 cache: 
desc: LL cache: 

desc: Timerange: Basic block 0 - 4424605
desc: Trigger: dump

positions: line
events: Ir
summary: 230385


ob=(20) /usr/bin/redis-check-rdb
fl=(215) ???
fn=(4672) dictSdsKeyCaseCompare
0 12
cob=(3) /usr/lib/x86_64-linux-gnu/libc.so.6
cfi=(180) ./string/../sysdeps/x86_64/multiarch/strcmp-avx2.S
cfn=(4676) __strcasecmp_avx2
calls=3 194 
0 142
0 606
0 2579

totals: 256321
`

// TestParseCallgrindTotal: the count is the summary line (callgrind_annotate's
// PROGRAM TOTALS), the totals line without one; a file with neither is an
// error, not 0.
func TestParseCallgrindTotal(t *testing.T) {
	for _, tc := range []struct {
		name, in string
		want     int64
		err      bool
	}{
		{"dump", cgDump, 230385, false},
		{"totals only", strings.Replace(cgDump, "summary: 230385\n", "", 1), 256321, false},
		{"two events", "events: Ir Dr\nsummary: 1200 345\n", 1200, false},
		{"neither", "# callgrind format\nevents: Ir\n", 0, true},
		{"garbled", "summary: many\n", 0, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := parseCallgrindTotal(strings.NewReader(tc.in))
			if (err != nil) != tc.err || got != tc.want {
				t.Fatalf("parseCallgrindTotal = %d, %v; want %d, error %v", got, err, tc.want, tc.err)
			}
		})
	}
}

// TestIngestCount: per operation is the difference of the medians over the
// operations; the range is that of each run's own difference; fewer
// instructions with the operations than without is an error.
func TestIngestCount(t *testing.T) {
	per, lo, hi, err := ingestCount([]int64{1_000_100, 1_000_000, 999_900}, []int64{31_000_200, 30_998_000, 31_000_000}, 10_000)
	if err != nil || per != 3000 || lo != 2999.8 || hi != 3000.01 {
		t.Fatalf("ingestCount = %v, %v, %v, %v; want 3000, 2999.8, 3000.01", per, lo, hi, err)
	}
	if _, _, _, err := ingestCount([]int64{1000}, []int64{999}, 10); err == nil {
		t.Fatal("fewer instructions with the operations: no error")
	}
	if _, _, _, err := ingestCount([]int64{1000, 1000}, []int64{2000}, 10); err == nil {
		t.Fatal("unpaired runs: no error")
	}
	if got := thousands(1234567.5); got != "1,234,568" {
		t.Fatalf("thousands = %q", got)
	}
	if got := thousands(999); got != "999" {
		t.Fatalf("thousands = %q", got)
	}
}

// fakeValgrind writes a valgrind and a callgrind_control for PATH. The
// valgrind checks that it runs TestCallgrindIngest with the settings its
// comment asks for and writes a count of 1,000,000 + CG_N × 3,000 (3,350
// with CG_SECOND=1), its runs with CG_N set 1 ingest apart; it runs
// redis-server as is. callgrind_control -d writes the k-th dump of it
// with a count of k × 1,000,000.
func fakeValgrind(t *testing.T, testBin string) string {
	t.Helper()
	dir := t.TempDir()
	state := t.TempDir()
	scripts := map[string]string{
		"valgrind": `out=""
while [ $# -gt 0 ]; do case "$1" in --callgrind-out-file=*) out="${1#*=}"; shift;; --*) shift;; *) break;; esac; done
case "$1" in *redis-server) echo "$out" > ` + state + `/$$; exec "$@";; esac
[ "$1" = "` + testBin + `" ] && [ "$2" = '-test.run=^TestCallgrindIngest$' ] || { echo "ran $*"; exit 3; }
[ "$CG_PENDING" = 10000 ] && [ "$GOMAXPROCS" = 1 ] && [ "$GOGC" = off ] && [ "$GODEBUG" = asyncpreemptoff=1 ] || { echo "bad env"; exit 3; }
per=3000; [ "$CG_SECOND" = 1 ] && per=3350
runs=$(cat ` + state + `/runs 2>/dev/null || echo 0); echo $((runs + 1)) > ` + state + `/runs
noise=0; [ "$CG_N" != 0 ] && noise=$(( (runs % 3 - 1) * 10000 ))
echo "summary: $((1000000 + CG_N * per + noise))" > "$out"
echo "--- PASS: TestCallgrindIngest (0.01s)"`,
		"callgrind_control": `out=$(cat ` + state + `/$2)
case "$1" in -d)
  k=$(( $(cat ` + state + `/$2.k 2>/dev/null || echo 0) + 1 )); echo $k > ` + state + `/$2.k
  printf 'events: Ir\nsummary: %d\n' $((k * 1000000)) > "$out.$k";;
esac`,
	}
	for name, body := range scripts {
		if err := os.WriteFile(filepath.Join(dir, name), []byte("#!/bin/sh\n"+body+"\n"), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

// icountTable runs bench --only icount and returns its table.
func icountTable(t *testing.T, args ...string) string {
	t.Helper()
	var out, log bytes.Buffer
	if err := bench(append([]string{"--only", "icount"}, args...), &out, &log); err != nil {
		t.Fatalf("bench: %v\n%s", err, log.String())
	}
	return out.String()
}

// wantRows checks that table has a row named name whose result starts
// with result.
func wantRows(t *testing.T, table string, rows [][2]string) {
	t.Helper()
	for _, r := range rows {
		if !strings.Contains(table, "| "+r[0]) || !regexp.MustCompile(regexp.QuoteMeta(r[0])+` *\| `+regexp.QuoteMeta(r[1])).MatchString(table) {
			t.Errorf("no row %q reading %q in\n%s", r[0], r[1], table)
		}
	}
}

// TestBenchIcountRows: the instruction rows of `mogate bench` run valgrind
// as TestCallgrindIngest's comment says and print the difference per
// ingest, and read the dumps of the redis-server they start per operation;
// valgrind and callgrind_control are fakes here, redis-server is real.
func TestBenchIcountRows(t *testing.T) {
	if _, err := exec.LookPath("redis-server"); err != nil {
		t.Skip("redis-server not installed")
	}
	testBin := filepath.Join(t.TempDir(), "memstore.test")
	t.Setenv("PATH", fakeValgrind(t, testBin)+string(os.PathListSeparator)+os.Getenv("PATH"))
	table := icountTable(t, "--callgrind-test", testBin, "--callgrind-ops", "10")
	wantRows(t, table, [][2]string{
		{rowIngest, "3,000 instructions (5 runs: 2,999–3,001)"},
		{rowIngestSecond, "3,350 instructions (5 runs: 3,349–3,351)"},
		{rowRedisHook, "100,000 instructions ("},
		{rowRedisPair, "200,000 instructions ("},
		{rowRedisBase, "300,000 instructions ("},
	})
	if strings.Contains(table, "failed") {
		t.Errorf("a count failed:\n%s", table)
	}
	// Without the test binary, its rows say how to get them.
	wantRows(t, icountTable(t, "--callgrind-ops", "4"), [][2]string{{rowIngest, "not run: no --callgrind-test"}, {rowRedisPair, "500,000 instructions"}})
}

// TestBenchIcountNoValgrind: without valgrind every instruction row reads
// n/a and the bench goes on.
func TestBenchIcountNoValgrind(t *testing.T) {
	t.Setenv("PATH", t.TempDir())
	table := icountTable(t, "--callgrind-test", "memstore.test")
	var rows [][2]string
	for _, name := range []string{rowIngest, rowIngestSecond, rowRedisHook, rowRedisPair, rowRedisBase} {
		rows = append(rows, [2]string{name, "n/a (valgrind missing)"})
	}
	wantRows(t, table, rows)
}

// TestBenchIcountRedis counts a few operations on a real redis-server
// under callgrind, when valgrind is installed: each count is there.
func TestBenchIcountRedis(t *testing.T) {
	for _, bin := range []string{"valgrind", "callgrind_control", "redis-server"} {
		if _, err := exec.LookPath(bin); err != nil {
			t.Skipf("%s not installed", bin)
		}
	}
	table := icountTable(t, "--callgrind-ops", "20")
	for _, name := range []string{rowRedisHook, rowRedisPair, rowRedisBase} {
		if !regexp.MustCompile(regexp.QuoteMeta(name) + ` *\| [1-9][0-9,]* instructions \([0-9.]+ commands\)`).MatchString(table) {
			t.Errorf("no count in row %q:\n%s", name, table)
		}
	}
}

// TestBenchMakefileCallgrind: `make bench` builds the memory store's test
// binary and hands that binary to mogate bench, whose package has
// TestCallgrindIngest; so the instruction rows cannot silently read "not
// run".
func TestBenchMakefileCallgrind(t *testing.T) {
	b, err := os.ReadFile("../../Makefile")
	if err != nil {
		t.Fatal(err)
	}
	mk := string(b)
	built := regexp.MustCompile(`\$\(GO\) test -c -o (\S+) \./(matcher/memstore)/`).FindStringSubmatch(mk)
	if built == nil {
		t.Fatal("the Makefile builds no test binary of ./matcher/memstore/")
	}
	if !strings.Contains(mk, "--callgrind-test "+built[1]) {
		t.Errorf("the Makefile builds %s but passes no --callgrind-test %s", built[1], built[1])
	}
	src, err := os.ReadFile(filepath.Join("../..", built[2], "callgrind_test.go"))
	if err != nil || !strings.Contains(string(src), "func TestCallgrindIngest(") {
		t.Errorf("%s has no TestCallgrindIngest: %v", built[2], err)
	}
	if !strings.Contains(mk, "DEB_DEPS=valgrind:valgrind") {
		t.Error("make bench does not install valgrind when missing")
	}
}
