package redisstore

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/mogate/mogate/matcher/redisstore/redistest"
)

// client returns a client of a private Redis (see redistest).
func client(t *testing.T) *redis.Client {
	t.Helper()
	return redistest.Start(t).Client()
}

func TestBaselineCreateConsume(t *testing.T) {
	ctx := context.Background()
	s := NewBaseline(client(t))
	id := fmt.Sprintf("t%d", time.Now().UnixNano())
	to, from := "+14155550100", fmt.Sprintf("+1415%07d", time.Now().UnixNano()%10_000_000)
	if err := s.Create(ctx, id, to, from, "482913", time.Minute); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Consume(ctx, to, from, "code 000000", "m0"); !errors.Is(err, ErrNoMatch) {
		t.Fatalf("wrong code: %v", err)
	}
	if _, err := s.Consume(ctx, to, "+19999999999", "482913", "m1"); !errors.Is(err, ErrNoMatch) {
		t.Fatalf("other sender: %v", err)
	}
	got, err := s.Consume(ctx, to, from, "code 482913", "m2")
	if err != nil || got != id {
		t.Fatalf("Consume = %q %v", got, err)
	}
	if st, _ := s.Status(ctx, id); st != "verified" {
		t.Fatalf("status %q", st)
	}
	if _, err := s.Consume(ctx, to, from, "482913", "m3"); !errors.Is(err, ErrNoMatch) {
		t.Fatalf("second consume: %v", err)
	}
}

func TestBaselineConsumeIsAtomic(t *testing.T) {
	ctx := context.Background()
	s := NewBaseline(client(t))
	id := fmt.Sprintf("a%d", time.Now().UnixNano())
	to, from := "+14155550100", fmt.Sprintf("+1416%07d", time.Now().UnixNano()%10_000_000)
	if err := s.Create(ctx, id, to, from, "1234", time.Minute); err != nil {
		t.Fatal(err)
	}
	var wins atomic.Int32
	var wg sync.WaitGroup
	for i := range 32 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if _, err := s.Consume(ctx, to, from, "1234", fmt.Sprint(i)); err == nil {
				wins.Add(1)
			}
		}()
	}
	wg.Wait()
	if wins.Load() != 1 {
		t.Fatalf("%d concurrent consumes won", wins.Load())
	}
}
