package redisstore_test

import (
	"context"
	"errors"
	"fmt"
	"net"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/mogate/mogate/matcher"
	"github.com/mogate/mogate/matcher/redisstore"
	"github.com/mogate/mogate/matcher/redisstore/redistest"
	"github.com/mogate/mogate/matcher/storetest"
)

// holdCalls is a client hook that holds every round trip carrying a
// function call until release is closed, and counts those round trips
// and the calls they carry.
type holdCalls struct {
	release      chan struct{}
	trips, calls atomic.Int64
}

func fcalls(cmds ...redis.Cmder) int64 {
	n := int64(0)
	for _, c := range cmds {
		if c.Name() == "fcall" {
			n++
		}
	}
	return n
}

func (h *holdCalls) hold(cmds ...redis.Cmder) {
	if n := fcalls(cmds...); n > 0 {
		h.trips.Add(1)
		h.calls.Add(n)
		<-h.release
	}
}

func (h *holdCalls) DialHook(next redis.DialHook) redis.DialHook { return next }

func (h *holdCalls) ProcessHook(next redis.ProcessHook) redis.ProcessHook {
	return func(ctx context.Context, cmd redis.Cmder) error {
		h.hold(cmd)
		return next(ctx, cmd)
	}
}

func (h *holdCalls) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return func(ctx context.Context, cmds []redis.Cmder) error {
		h.hold(cmds...)
		return next(ctx, cmds)
	}
}

// TestCallsShareRoundTrips: function calls made while others are in
// flight are sent together, as one pipeline, once a batch in flight is
// done, and each gets its own reply: 20 verifications at once take the
// batches in flight (one call each) and one more round trip, not 20.
func TestCallsShareRoundTrips(t *testing.T) {
	srv := redistest.Start(t)
	s := open(t, options(srv.URL(), nil))
	ctx := context.Background()
	const n = 20
	sess := make([]matcher.Session, n)
	for i := range sess {
		var err error
		sess[i], _, err = s.Create(ctx, matcher.CreateRequest{Key: "k", Number: fmt.Sprintf("+1415%07d", i), To: storetest.To, TTL: time.Hour})
		if err != nil {
			t.Fatal(err)
		}
	}
	h := &holdCalls{release: make(chan struct{})}
	s.Client().AddHook(h)
	outs := make([]matcher.Outcome, n)
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i, v := range sess {
		wg.Go(func() {
			msg := matcher.Message{Provider: "tw", MessageID: "SM" + v.ID, From: v.Number, To: storetest.To, Text: "Code " + v.Code}
			outs[i], errs[i] = s.Ingest(ctx, msg, matcher.IngestOptions{})
		})
	}
	waitFor(t, "every call in flight or queued", func() bool { return h.calls.Load()+int64(s.QueuedCalls()) == n })
	close(h.release)
	wg.Wait()
	for i, v := range sess {
		if errs[i] != nil || outs[i].Kind != matcher.Matched || outs[i].SessionID != v.ID {
			t.Errorf("message of %s: %+v %v", v.ID, outs[i], errs[i])
		}
	}
	if got, want := h.trips.Load(), int64(redisstore.MaxBatchesInFlight+1); got > want {
		t.Errorf("%d calls at once took %d round trips, want at most %d", n, got, want)
	}
}

// TestQueuedCallsStalled: with Redis frozen, calls queued behind the
// batches in flight fail with ErrUnavailable, as those do, and none hangs.
func TestQueuedCallsStalled(t *testing.T) {
	srv := redistest.Start(t)
	o := options(srv.URL(), nil)
	o.Timeout = 300 * time.Millisecond
	s := open(t, o)
	ctx := context.Background()
	createVerify(t, s, storetest.Alice) // the tag registered
	srv.Stop()
	defer srv.Cont()
	n := 3 * redisstore.MaxBatchesInFlight
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			msg := matcher.Message{Provider: "tw", MessageID: fmt.Sprint("SM", i), From: storetest.Alice, To: storetest.To, Text: "hello"}
			_, errs[i] = s.Ingest(ctx, msg, matcher.IngestOptions{})
		})
	}
	wg.Wait()
	for i, err := range errs {
		var ne net.Error
		if !errors.Is(err, matcher.ErrUnavailable) || !errors.As(err, &ne) || !ne.Timeout() {
			t.Errorf("call %d with Redis frozen = %v, want ErrUnavailable (a timeout)", i, err)
		}
	}
}

// panicOnCall is a client hook whose function calls panic.
type panicOnCall struct{ on atomic.Bool }

func (h *panicOnCall) DialHook(next redis.DialHook) redis.DialHook { return next }

func (h *panicOnCall) ProcessHook(next redis.ProcessHook) redis.ProcessHook {
	return func(ctx context.Context, cmd redis.Cmder) error {
		if h.on.Load() && fcalls(cmd) > 0 {
			panic("hook")
		}
		return next(ctx, cmd)
	}
}

func (h *panicOnCall) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return func(ctx context.Context, cmds []redis.Cmder) error {
		if h.on.Load() && fcalls(cmds...) > 0 {
			panic("hook")
		}
		return next(ctx, cmds)
	}
}

// TestCallPanicFreesItsBatch: a call whose sending panics (in a client
// hook), recovered by its caller, leaves no batch in flight behind it:
// after as many such panics as batches in flight, calls still go.
func TestCallPanicFreesItsBatch(t *testing.T) {
	srv := redistest.Start(t)
	s := open(t, options(srv.URL(), nil))
	ctx := context.Background()
	createVerify(t, s, storetest.Alice) // the tag registered
	h := &panicOnCall{}
	s.Client().AddHook(h)
	done := make(chan error, 1)
	go func() {
		h.on.Store(true)
		for i := range redisstore.MaxBatchesInFlight + 1 {
			func() {
				defer func() { _ = recover() }()
				_, _ = s.Ingest(ctx, matcher.Message{Provider: "tw", MessageID: fmt.Sprint("P", i), From: storetest.Alice, To: storetest.To, Text: "hello"}, matcher.IngestOptions{})
			}()
		}
		h.on.Store(false)
		_, err := s.Ingest(ctx, matcher.Message{Provider: "tw", MessageID: "after", From: storetest.Alice, To: storetest.To, Text: "hello"}, matcher.IngestOptions{})
		done <- err
	}()
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("calls after panicking ones never returned")
	}
}
