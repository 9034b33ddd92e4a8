package redisstore_test

import (
	"context"
	"fmt"
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
