package gateway

import (
	"context"
	"errors"
	"sync/atomic"
	"testing"
	"time"

	"github.com/mogate/mogate/matcher/redisstore/redistest"
	"github.com/redis/go-redis/v9"
)

// redisFault is a client hook: while down is set every command fails as if
// Redis could not be reached; with lostReply set an EVAL or EVALSHA runs
// and then fails as if its caller's context had ended before the answer;
// with pipeline set the first pipeline waits for it to be closed.
type redisFault struct {
	down, lostReply atomic.Bool
	pipeline        chan chan struct{} // sends, once, a channel closed to go on
}

var errUnreachable = errors.New("redis unreachable")

func (f *redisFault) DialHook(next redis.DialHook) redis.DialHook { return next }

func (f *redisFault) ProcessHook(next redis.ProcessHook) redis.ProcessHook {
	return func(ctx context.Context, cmd redis.Cmder) error {
		if f.down.Load() {
			cmd.SetErr(errUnreachable)
			return errUnreachable
		}
		err := next(ctx, cmd)
		if name := cmd.Name(); err == nil && f.lostReply.Load() && (name == "eval" || name == "evalsha") {
			cmd.SetErr(context.Canceled)
			return context.Canceled
		}
		return err
	}
}

func (f *redisFault) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return func(ctx context.Context, cmds []redis.Cmder) error {
		if f.down.Load() {
			for _, c := range cmds {
				c.SetErr(errUnreachable)
			}
			return errUnreachable
		}
		if f.pipeline != nil {
			goOn := make(chan struct{})
			select {
			case f.pipeline <- goOn:
				<-goOn
			default:
			}
		}
		return next(ctx, cmds)
	}
}

// faultySlots is a replica's sharedSlots with a limit of one per key and
// short leases, on its own client with fault f.
func faultySlots(t *testing.T, srv *redistest.Server, f *redisFault, lease, renew time.Duration) *sharedSlots {
	t.Helper()
	c := redis.NewClient(&redis.Options{Addr: srv.Addr()})
	t.Cleanup(func() { c.Close() })
	c.AddHook(f)
	l := newSharedSlots(c, "test:", 1)
	l.lease, l.renew = lease, renew
	return l
}

// slotCount is the number of slots of key k that l counts in.
func slotCount(t *testing.T, srv *redistest.Server, l *sharedSlots) int64 {
	t.Helper()
	n, err := srv.Client().ZCard(context.Background(), l.prefix+"k").Result()
	if err != nil {
		t.Fatal(err)
	}
	return n
}

// TestSharedSlotRetakenAfterOutage: a replica that cannot reach Redis for
// longer than a lease loses its slot to another replica; once Redis is
// back its stream, still open, takes its slot again, so the limit holds
// for the streams actually open.
func TestSharedSlotRetakenAfterOutage(t *testing.T) {
	srv := redistest.Start(t)
	ctx := context.Background()
	fa := &redisFault{}
	a := faultySlots(t, srv, fa, 300*time.Millisecond, 50*time.Millisecond)
	b := faultySlots(t, srv, &redisFault{}, 300*time.Millisecond, 50*time.Millisecond)
	releaseA, err := a.take(ctx, "k")
	if err != nil {
		t.Fatal(err)
	}
	fa.down.Store(true)
	var releaseB func()
	eventually(t, "a's lease to end while it cannot renew", func() bool {
		rel, err := b.take(ctx, "k")
		if err != nil && !errors.Is(err, errNoSlot) {
			t.Fatal(err)
		}
		releaseB = rel
		return err == nil
	})
	fa.down.Store(false)
	releaseB()
	eventually(t, "a's renewal to take its slot back", func() bool { return slotCount(t, srv, a) == 1 })
	if _, err := b.take(ctx, "k"); !errors.Is(err, errNoSlot) {
		t.Fatalf("take while a's stream is open = %v, want no slot", err)
	}
	releaseA()
	if _, err := b.take(ctx, "k"); err != nil {
		t.Fatalf("take after a released = %v", err)
	}
}

// TestSharedSlotFreedWhenTakeFails: a take whose script ran but whose
// answer was lost (its context ended) leaves no slot held.
func TestSharedSlotFreedWhenTakeFails(t *testing.T) {
	srv := redistest.Start(t)
	f := &redisFault{}
	f.lostReply.Store(true)
	a := faultySlots(t, srv, f, streamLease, streamRenew)
	if _, err := a.take(context.Background(), "k"); !errors.Is(err, context.Canceled) {
		t.Fatalf("take = %v, want the lost answer's error", err)
	}
	eventually(t, "the slot of the failed take to be freed", func() bool { return slotCount(t, srv, a) == 0 })
}

// TestSharedSlotReleasedDuringRenewal: a slot released while its renewal
// is on its way is not left held by the renewal.
func TestSharedSlotReleasedDuringRenewal(t *testing.T) {
	srv := redistest.Start(t)
	f := &redisFault{pipeline: make(chan chan struct{})}
	a := faultySlots(t, srv, f, streamLease, 20*time.Millisecond)
	release, err := a.take(context.Background(), "k")
	if err != nil {
		t.Fatal(err)
	}
	goOn := <-f.pipeline // the renewal is under way
	release()
	if n := slotCount(t, srv, a); n != 0 {
		t.Fatalf("%d slots after the release", n)
	}
	close(goOn)
	eventually(t, "the renewer to finish and stop, holding nothing", func() bool {
		a.mu.Lock()
		defer a.mu.Unlock()
		return !a.renewing
	})
	if n := slotCount(t, srv, a); n != 0 {
		t.Fatalf("%d slots after the renewal, want the released one free", n)
	}
}
