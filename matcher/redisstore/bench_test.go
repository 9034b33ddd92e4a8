package redisstore_test

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/mogate/mogate/matcher"
	"github.com/mogate/mogate/matcher/redisstore/redistest"
	"github.com/mogate/mogate/matcher/storetest"
)

// BenchmarkCreateVerify measures one create and its matching message, each
// one function call, on a private Redis with appendfsync always.
func BenchmarkCreateVerify(b *testing.B) {
	srv := redistest.Start(b)
	s, err := openStore(options(srv.URL(), nil))
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close()
	ctx := context.Background()
	b.ReportAllocs()
	b.SetParallelism(8) // concurrent requests share Redis's fsyncs
	b.RunParallel(func(pb *testing.PB) {
		for i := 0; pb.Next(); i++ {
			from := fmt.Sprintf("+1415%07d", time.Now().UnixNano()%10_000_000)
			sess, _, err := s.Create(ctx, matcher.CreateRequest{Key: "k", Number: from, To: storetest.To, TTL: time.Minute})
			if err != nil {
				b.Fatal(err)
			}
			msg := matcher.Message{Provider: "tw", MessageID: sess.ID, From: from, To: storetest.To, Text: "Code " + sess.Code}
			if _, err := s.Ingest(ctx, msg, matcher.IngestOptions{}); err != nil {
				b.Fatal(err)
			}
		}
	})
}

// BenchmarkCreateIngest measures one create and its matching message, one
// after the other, with what Redis reports of them (INFO commandstats):
// the commands per pair (the two function calls and the commands they
// run) and the µs Redis accounts to the calls, beside the store's
// allocations. The µs move with the machine's load; the counts do not.
func BenchmarkCreateIngest(b *testing.B) {
	srv := redistest.Start(b)
	s, err := openStore(options(srv.URL(), nil))
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close()
	rc := srv.Client()
	ctx := context.Background()
	createVerify(b, s, storetest.Alice) // the tag registered, the library warm
	stats := func() (calls, usec float64) {
		info, err := rc.Info(ctx, "commandstats").Result()
		if err != nil {
			b.Fatal(err)
		}
		for line := range strings.SplitSeq(info, "\n") {
			name, rest, ok := strings.Cut(strings.TrimSpace(line), ":")
			if !ok || name == "cmdstat_info" || name == "cmdstat_config|resetstat" {
				continue
			}
			for kv := range strings.SplitSeq(rest, ",") {
				k, v, _ := strings.Cut(kv, "=")
				n, _ := strconv.ParseFloat(v, 64)
				switch {
				case k == "calls":
					calls += n
				case k == "usec" && name == "cmdstat_fcall":
					usec += n
				}
			}
		}
		return calls, usec
	}
	if err := rc.ConfigResetStat(ctx).Err(); err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		createVerify(b, s, fmt.Sprintf("+1415%07d", i))
	}
	b.StopTimer()
	calls, usec := stats()
	b.ReportMetric(calls/float64(b.N), "redis-cmds/op")
	b.ReportMetric(usec/float64(b.N), "redis-fcall-µs/op")
}
