package redisstore_test

import (
	"context"
	"fmt"
	"os"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/mogate/mogate/matcher"
	"github.com/mogate/mogate/matcher/redisstore"
	"github.com/mogate/mogate/matcher/redisstore/redistest"
	"github.com/mogate/mogate/matcher/storetest"
)

// mixedLibraries sends every other library call of a client to the
// library of another build, loaded beside this build's: consecutive
// operations then run as on the replicas of two builds during a rolling
// upgrade (both builds pass their functions the same arguments).
type mixedLibraries struct {
	this, other string // library names
	first       int64  // 0: the first call goes to other; 1: the second
	noFirst     bool   // other has no ingest mode "first": those calls stay here
	n, sent     atomic.Int64
}

func (m *mixedLibraries) routeAll(cmds []redis.Cmder) {
	for _, cmd := range cmds {
		m.route(cmd)
	}
}

func (m *mixedLibraries) route(cmd redis.Cmder) {
	args := cmd.Args()
	if len(args) < 2 || args[0] != "fcall" {
		return
	}
	name, ok := args[1].(string)
	if !ok || !strings.HasPrefix(name, m.this+"_") || m.noFirst && ownFirstStep(name, args) {
		return
	}
	if m.n.Add(1)%2 == m.first {
		args[1] = m.other + strings.TrimPrefix(name, m.this)
		m.sent.Add(1)
	}
}

// ownFirstStep reports whether args call ingest in mode "first"
// (IngestOptions.OwnFirst, ARGV[20]: library.lua ingestArgs), which stays
// with this build's library when the other is one without that mode
// (45881b3, whose replicas ingest every message in one call).
func ownFirstStep(name string, args []any) bool {
	if !strings.HasSuffix(name, "_ingest") || len(args) < 3 {
		return false
	}
	nkeys, err := strconv.Atoi(fmt.Sprint(args[2]))
	if err != nil {
		return false
	}
	i := 3 + nkeys + 19
	return i < len(args) && fmt.Sprint(args[i]) == "first"
}

// TestRollingUpgradeMixedCalls runs the store suite with every other
// function call made by the library of an earlier build, starting with
// either build: sessions created by one verify, expire, cancel and are
// superseded through the other, in both directions, on the data either
// writes. The earlier builds (testdata/library-<commit>.lua, library.lua
// at that commit): 45881b3, before the calls took fewer commands, and
// 059ec68, before ingest's Lua did less work per message.
func TestRollingUpgradeMixedCalls(t *testing.T) {
	for _, b := range []struct {
		commit  string
		noFirst bool
	}{{"45881b3", true}, {"059ec68", false}} {
		t.Run(b.commit, func(t *testing.T) { mixedCalls(t, "testdata/library-"+b.commit+".lua", b.noFirst) })
	}
}

// mixedCalls runs the store suite with every other call made by the
// library in file (noFirst: but the calls of ingest mode "first", which it
// lacks).
func mixedCalls(t *testing.T, file string, noFirst bool) {
	old, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	this, _ := redisstore.Library("")
	oldName, oldCode := redisstore.Library(string(old))
	if oldName == this {
		t.Fatal("the earlier library is this build's")
	}
	srv := redistest.Start(t)
	rc := srv.Client()
	ctx := context.Background()
	if err := rc.FunctionLoadReplace(ctx, oldCode).Err(); err != nil {
		t.Fatal(err)
	}
	for _, first := range []int64{0, 1} {
		t.Run(fmt.Sprintf("earlier build on call %d", 2-first), func(t *testing.T) {
			var hooks []*mixedLibraries
			storetest.Run(t, func(t *testing.T, clock func() time.Time) matcher.Store {
				if err := rc.FlushAll(ctx).Err(); err != nil {
					t.Fatal(err)
				}
				s := open(t, fakeOptions(srv.URL(), clock))
				h := &mixedLibraries{this: this, other: oldName, first: first, noFirst: noFirst}
				s.Client().AddHook(cmdHook{before: h.routeAll})
				hooks = append(hooks, h)
				return s
			})
			var sent int64
			for _, h := range hooks {
				sent += h.sent.Load()
			}
			if sent == 0 {
				t.Fatal("no call went to the earlier library")
			}
			t.Logf("%d calls went to the earlier library", sent)
		})
	}
}
