package redisstore_test

import (
	"context"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/mogate/mogate/matcher"
	"github.com/mogate/mogate/matcher/redisstore"
	"github.com/mogate/mogate/matcher/redisstore/redistest"
	"github.com/mogate/mogate/matcher/storetest"
)

// spread is one Store made of several replicas: each call goes to the next
// one, as a load balancer would send requests. The store suite on it shows
// that every behaviour holds across replicas.
type spread struct {
	rs   []*redisstore.Store
	next atomic.Uint64
	wake chan struct{}
	stop chan struct{}
	wg   sync.WaitGroup
}

func newSpread(rs []*redisstore.Store) *spread {
	s := &spread{rs: rs, wake: make(chan struct{}, 1), stop: make(chan struct{})}
	for _, r := range rs {
		s.wg.Add(1)
		go func() {
			defer s.wg.Done()
			for {
				select {
				case <-r.Events():
					select {
					case s.wake <- struct{}{}:
					default:
					}
				case <-s.stop:
					return
				}
			}
		}()
	}
	return s
}

func (s *spread) pick() *redisstore.Store { return s.rs[s.next.Add(1)%uint64(len(s.rs))] }

func (s *spread) Create(ctx context.Context, req matcher.CreateRequest) (matcher.Session, bool, error) {
	return s.pick().Create(ctx, req)
}

func (s *spread) LookupIdempotent(ctx context.Context, key, idem string) (matcher.Session, bool, error) {
	return s.pick().LookupIdempotent(ctx, key, idem)
}

func (s *spread) Get(ctx context.Context, id string) (matcher.Session, error) {
	return s.pick().Get(ctx, id)
}

func (s *spread) PendingFor(ctx context.Context, sender string, tos []string) ([]matcher.Session, error) {
	return s.pick().PendingFor(ctx, sender, tos)
}

func (s *spread) ByPageToken(ctx context.Context, token string) (matcher.Session, error) {
	return s.pick().ByPageToken(ctx, token)
}

func (s *spread) Cancel(ctx context.Context, id string) (matcher.Session, error) {
	return s.pick().Cancel(ctx, id)
}

func (s *spread) Wait(ctx context.Context, id string) (matcher.Session, error) {
	return s.pick().Wait(ctx, id)
}

func (s *spread) Ingest(ctx context.Context, msg matcher.Message, opt matcher.IngestOptions) (matcher.Outcome, error) {
	return s.pick().Ingest(ctx, msg, opt)
}

func (s *spread) SpendNonce(ctx context.Context, provider, nonce string) (bool, error) {
	return s.pick().SpendNonce(ctx, provider, nonce)
}

func (s *spread) PendingByNumber(ctx context.Context) (map[string]int, error) {
	return s.pick().PendingByNumber(ctx)
}

func (s *spread) ClaimEvents(ctx context.Context, lease time.Duration, limit int) ([]matcher.Event, error) {
	return s.pick().ClaimEvents(ctx, lease, limit)
}

func (s *spread) DeferEvent(ctx context.Context, ev matcher.Event, until time.Time) error {
	return s.pick().DeferEvent(ctx, ev, until)
}

func (s *spread) AckEvent(ctx context.Context, ev matcher.Event, dead bool) error {
	return s.pick().AckEvent(ctx, ev, dead)
}

func (s *spread) Events() <-chan struct{} { return s.wake }

func (s *spread) Err(ctx context.Context) error { return s.pick().Err(ctx) }

func (s *spread) Run(ctx context.Context) {
	var wg sync.WaitGroup
	for _, r := range s.rs {
		wg.Add(1)
		go func() { defer wg.Done(); r.Run(ctx) }()
	}
	wg.Wait()
}

func (s *spread) Close() error {
	close(s.stop)
	s.wg.Wait()
	for _, r := range s.rs {
		r.Close()
	}
	return nil
}

// TestStoreAcrossReplicas runs the store suite on three replicas of one
// Redis, every call on the next replica.
func TestStoreAcrossReplicas(t *testing.T) {
	srv := redistest.Start(t)
	rc := srv.Client()
	storetest.Run(t, func(t *testing.T, clock func() time.Time) matcher.Store {
		if err := rc.FlushAll(context.Background()).Err(); err != nil {
			t.Fatal(err)
		}
		var rs []*redisstore.Store
		for range 3 {
			rs = append(rs, open(t, fakeOptions(srv.URL(), clock)))
		}
		return newSpread(rs)
	})
}
