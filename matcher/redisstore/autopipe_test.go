package redisstore_test

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strings"
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

// holding adds a holdCalls to s's client.
func holding(s *redisstore.Store) *holdCalls {
	h := &holdCalls{release: make(chan struct{})}
	s.Client().AddHook(cmdHook{before: h.hold})
	return h
}

func (h *holdCalls) hold(cmds []redis.Cmder) {
	if n := fcalls(cmds...); n > 0 {
		h.trips.Add(1)
		h.calls.Add(n)
		<-h.release
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
	h := holding(s)
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

// killAndFreeze closes every connection clients have to srv, and freezes
// it (SIGSTOP): a batch sent next must dial anew, and its handshake times
// out.
func killAndFreeze(t *testing.T, srv *redistest.Server) {
	t.Helper()
	rc := srv.Client()
	if err := rc.ClientKillByFilter(context.Background(), "TYPE", "normal").Err(); err != nil {
		t.Fatal(err)
	}
	if err := rc.ClientKillByFilter(context.Background(), "TYPE", "pubsub").Err(); err != nil {
		t.Fatal(err)
	}
	srv.Stop()
	t.Cleanup(srv.Cont)
}

// within runs fn, and fails the test if it has not returned after d.
func within(t *testing.T, d time.Duration, what string, fn func()) {
	t.Helper()
	done := make(chan struct{})
	go func() { defer close(done); fn() }()
	select {
	case <-done:
	case <-time.After(d):
		t.Fatalf("%s: not done after %s", what, d)
	}
}

// isTimeout reports whether err is ErrUnavailable for a timeout.
func isTimeout(err error) bool {
	var ne net.Error
	return errors.Is(err, matcher.ErrUnavailable) && errors.As(err, &ne) && ne.Timeout()
}

// stalledCalls closes the store's connections and freezes Redis, then
// makes n calls (call(i)) at once: MaxBatchesInFlight first, the rest
// queued behind them half the timeout later, so that their batch is sent
// with time left and must dial anew. It returns their errors, or fails
// the test if they have not all returned after 30 s.
func stalledCalls(t *testing.T, srv *redistest.Server, s *redisstore.Store, timeout time.Duration, n int, call func(i int) error) []error {
	t.Helper()
	h := holding(s)
	close(h.release) // counts, holds nothing
	killAndFreeze(t, srv)
	errs := make([]error, n)
	within(t, 30*time.Second, "calls with Redis frozen", func() {
		var wg sync.WaitGroup
		for i := range n {
			if i == redisstore.MaxBatchesInFlight {
				waitFor(t, "the batches in flight", func() bool { return h.trips.Load() == redisstore.MaxBatchesInFlight })
				time.Sleep(timeout / 2)
			}
			wg.Go(func() { errs[i] = call(i) })
		}
		wg.Wait()
	})
	if got := h.trips.Load(); got <= redisstore.MaxBatchesInFlight {
		t.Fatalf("%d round trips; the queued calls were never sent", got)
	}
	return errs
}

// TestQueuedCallsStalled: with Redis frozen and the store's connections
// closed, calls queued behind the batches in flight fail with
// ErrUnavailable (a timeout), as those do, and none hangs.
func TestQueuedCallsStalled(t *testing.T) {
	srv, o, s := timedStore(t, 300*time.Millisecond)
	ctx := context.Background()
	errs := stalledCalls(t, srv, s, o.Timeout, 3*redisstore.MaxBatchesInFlight, func(i int) error {
		msg := matcher.Message{Provider: "tw", MessageID: fmt.Sprint("SM", i), From: storetest.Alice, To: storetest.To, Text: "hello"}
		_, err := s.Ingest(ctx, msg, matcher.IngestOptions{})
		return err
	})
	for i, err := range errs {
		if !isTimeout(err) {
			t.Errorf("call %d with Redis frozen = %v, want ErrUnavailable (a timeout)", i, err)
		}
	}
}

// timedStore opens a store on a private Redis with the given call
// timeout, its number's tag registered.
func timedStore(t *testing.T, timeout time.Duration) (*redistest.Server, redisstore.Options, *redisstore.Store) {
	t.Helper()
	srv := redistest.Start(t)
	o := options(srv.URL(), nil)
	o.Timeout = timeout
	s := open(t, o)
	createVerify(t, s, storetest.Alice) // the tag registered
	return srv, o, s
}

// ackOf is an event of a session that no call created: acking it writes
// nothing, and succeeds.
func ackOf(i int) matcher.Event {
	id := fmt.Sprint("nosuch", i)
	return matcher.Event{ID: id, Session: &matcher.Session{ID: id, To: storetest.To}}
}

// TestBatchWithoutConnectionFails: a batch that fails before anything is
// sent (its new connection's handshake times out: Redis frozen) fails
// every one of its calls; go-redis sets no error on the commands then,
// and calls whose reply is not read (AckEvent) must not report success
// for a write that never ran.
func TestBatchWithoutConnectionFails(t *testing.T) {
	srv, o, s := timedStore(t, 300*time.Millisecond)
	ctx := context.Background()
	if err := s.AckEvent(ctx, ackOf(-1), false); err != nil {
		t.Fatal(err)
	}
	errs := stalledCalls(t, srv, s, o.Timeout, 3*redisstore.MaxBatchesInFlight, func(i int) error {
		return s.AckEvent(ctx, ackOf(i), false)
	})
	for i, err := range errs {
		if !errors.Is(err, matcher.ErrUnavailable) {
			t.Errorf("ack %d with Redis frozen and no connection = %v, want ErrUnavailable", i, err)
		}
	}
}

// pauseOnBatch is a client hook that pauses Redis (CLIENT PAUSE, on rc)
// for pause right before the first round trip carrying more than one
// function call.
type pauseOnBatch struct {
	rc     *redis.Client
	pause  time.Duration
	paused atomic.Bool
}

func (h *pauseOnBatch) pauseOn(cmds []redis.Cmder) {
	if fcalls(cmds...) > 1 && !h.paused.Swap(true) {
		if err := h.rc.Do(context.Background(), "client", "pause", h.pause.Milliseconds(), "all").Err(); err != nil {
			panic(err)
		}
	}
}

// fillBatches starts MaxBatchesInFlight acks, each a batch held in flight
// by h until h.release is closed; wait for them with wg.
func fillBatches(t *testing.T, s *redisstore.Store, h *holdCalls, wg *sync.WaitGroup) {
	t.Helper()
	for i := range redisstore.MaxBatchesInFlight {
		wg.Go(func() { _ = s.AckEvent(context.Background(), ackOf(1000+i), false) })
	}
	waitFor(t, "the batches in flight", func() bool { return h.trips.Load() == redisstore.MaxBatchesInFlight })
}

// pausedBatch opens a store with the given call timeout whose calls are
// held by h until released, and whose first batch of several calls
// pauses Redis for pause (p) as it is sent.
func pausedBatch(t *testing.T, timeout, pause time.Duration) (redisstore.Options, *redisstore.Store, *holdCalls, *pauseOnBatch) {
	t.Helper()
	srv, o, s := timedStore(t, timeout)
	h := holding(s)
	p := &pauseOnBatch{rc: srv.Client(), pause: pause}
	s.Client().AddHook(cmdHook{pipelines: true, before: p.pauseOn})
	return o, s, h, p
}

// TestShortDeadlineSparesItsBatch: a call with a short deadline (A) sent
// in one batch with a call on the full timeout (B) does not bound B:
// with Redis paused longer than A's deadline, B succeeds.
func TestShortDeadlineSparesItsBatch(t *testing.T) {
	_, s, h, p := pausedBatch(t, 10*time.Second, 2*time.Second)
	var wg sync.WaitGroup
	fillBatches(t, s, h, &wg)
	var errA, errB error
	wg.Go(func() {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		errA = s.AckEvent(ctx, ackOf(1), false)
	})
	waitFor(t, "A queued", func() bool { return s.QueuedCalls() == 1 })
	wg.Go(func() { errB = s.AckEvent(context.Background(), ackOf(2), false) })
	waitFor(t, "B queued", func() bool { return s.QueuedCalls() == 2 })
	close(h.release)
	within(t, 30*time.Second, "the calls", wg.Wait)
	if !p.paused.Load() {
		t.Skipf("A and B were not sent together (A expired before its batch left: machine too slow); A: %v, B: %v", errA, errB)
	}
	if errB != nil {
		t.Errorf("B, sent with A (1 s deadline) while Redis paused 2 s = %v, want success", errB)
	}
	if errA != nil && !isTimeout(errA) {
		t.Errorf("A = %v, want success or a timeout", errA)
	}
}

// TestNoCallOutlivesItsTimeout: a call queued behind the batches in
// flight, then sent with a fresher one while Redis stalls, returns within
// the timeout of when it was made, not the fresher call's.
func TestNoCallOutlivesItsTimeout(t *testing.T) {
	o, s, h, p := pausedBatch(t, 2*time.Second, 3*time.Second)
	var wg sync.WaitGroup
	fillBatches(t, s, h, &wg)
	var errA, errB error
	var tookA time.Duration
	wg.Go(func() {
		start := time.Now()
		errA = s.AckEvent(context.Background(), ackOf(1), false)
		tookA = time.Since(start)
	})
	waitFor(t, "A queued", func() bool { return s.QueuedCalls() == 1 })
	time.Sleep(o.Timeout * 3 / 4) // B is made well after A
	wg.Go(func() { errB = s.AckEvent(context.Background(), ackOf(2), false) })
	waitFor(t, "B queued", func() bool { return s.QueuedCalls() == 2 })
	close(h.release)
	within(t, 30*time.Second, "the calls", wg.Wait)
	if !p.paused.Load() {
		t.Skipf("A and B were not sent together (machine too slow); A: %v, B: %v", errA, errB)
	}
	if slack := o.Timeout / 2; tookA > o.Timeout+slack {
		t.Errorf("A returned %v after it was made (%v), want within its timeout %v", tookA, errA, o.Timeout)
	}
	for name, err := range map[string]error{"A": errA, "B": errB} {
		if err != nil && !isTimeout(err) {
			t.Errorf("%s = %v, want success or a timeout", name, err)
		}
	}
}

// TestExpiredQueuedCallSparesFresh: a call queued until its deadline
// passed fails, as a timeout, and does not fail a fresh call of its
// batch.
func TestExpiredQueuedCallSparesFresh(t *testing.T) {
	_, o, s := timedStore(t, 500*time.Millisecond)
	h := holding(s)
	var wg sync.WaitGroup
	fillBatches(t, s, h, &wg)
	var errOld, errFresh error
	wg.Go(func() { errOld = s.AckEvent(context.Background(), ackOf(1), false) })
	waitFor(t, "the old call queued", func() bool { return s.QueuedCalls() == 1 })
	time.Sleep(o.Timeout + 200*time.Millisecond) // its deadline passes in the queue
	wg.Go(func() { errFresh = s.AckEvent(context.Background(), ackOf(2), false) })
	waitFor(t, "the fresh call queued", func() bool { return s.QueuedCalls() == 2 })
	close(h.release)
	within(t, 30*time.Second, "the calls", wg.Wait)
	if !isTimeout(errOld) {
		t.Errorf("call queued past its deadline = %v, want ErrUnavailable (a timeout)", errOld)
	}
	if errFresh != nil {
		t.Errorf("fresh call batched with an expired one = %v, want success", errFresh)
	}
}

// panicOnCall is a client hook whose function calls panic.
type panicOnCall struct{ on atomic.Bool }

func (h *panicOnCall) panicOn(cmds []redis.Cmder) {
	if h.on.Load() && fcalls(cmds...) > 0 {
		panic("hook")
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
	s.Client().AddHook(cmdHook{before: h.panicOn})
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

// panicOnBatch is a client hook that panics on round trips carrying more
// than one function call, before they are sent; panicAfterBatch once
// Redis has answered them.
var (
	panicOnBatch    = cmdHook{pipelines: true, before: panicIfBatch}
	panicAfterBatch = cmdHook{pipelines: true, after: panicIfBatch}
)

func panicIfBatch(cmds []redis.Cmder) {
	if fcalls(cmds...) > 1 {
		panic("hook")
	}
}

// TestBatchPanicFailsItsCalls: when sending a batch panics, its leader
// panics, and its other calls fail: none reports a write that never ran
// as done.
func TestBatchPanicFailsItsCalls(t *testing.T) {
	srv := redistest.Start(t)
	s := open(t, options(srv.URL(), nil))
	for i, err := range panickedBatch(t, s, panicOnBatch) {
		if !errors.Is(err, matcher.ErrUnavailable) {
			t.Errorf("call %d of a batch whose sending panicked = %v, want ErrUnavailable", i+1, err)
		}
	}
}

// panickedBatch queues 4 acks into one batch behind the batches in
// flight, sends it through hook (which panics), and returns the errors of
// the calls that did not panic, once it has checked that only the
// batch's leader did.
func panickedBatch(t *testing.T, s *redisstore.Store, hook redis.Hook) []error {
	t.Helper()
	createVerify(t, s, storetest.Alice) // the tag registered
	h := holding(s)
	s.Client().AddHook(hook)
	var wg sync.WaitGroup
	fillBatches(t, s, h, &wg)
	const n = 4
	errs := make([]error, n)
	var panicked atomic.Int64
	for i := range n {
		wg.Go(func() {
			defer func() {
				if recover() != nil {
					panicked.Add(1)
				}
			}()
			errs[i] = s.AckEvent(context.Background(), ackOf(i), false)
		})
		waitFor(t, "the calls queued", func() bool { return s.QueuedCalls() == i+1 })
	}
	close(h.release)
	within(t, 30*time.Second, "the calls", wg.Wait)
	if panicked.Load() != 1 {
		t.Fatalf("%d calls panicked, want 1 (the batch's leader)", panicked.Load())
	}
	return errs[1:]
}

// TestBatchPanicAfterSendAcksNone: when writes wait for a replica and
// sending a batch panics after Redis answered (a hook's), no call of the
// batch is acknowledged: the WAIT's verdict was never read.
func TestBatchPanicAfterSendAcksNone(t *testing.T) {
	primary := redistest.Start(t)
	redistest.StartReplica(t, primary)
	o := options(primary.URL(), nil)
	o.WaitReplicas, o.WaitTimeout = 1, time.Second
	s := open(t, o)
	for i, err := range panickedBatch(t, s, panicAfterBatch) {
		if !errors.Is(err, matcher.ErrUnavailable) {
			t.Errorf("call %d of a batch whose WAIT verdict was never read = %v, want ErrUnavailable", i+1, err)
		}
	}
}

// TestQueueKeepsNoSentCalls: once the queued calls are sent, the queue
// points to none of them (each holds its caller's context and command).
func TestQueueKeepsNoSentCalls(t *testing.T) {
	srv := redistest.Start(t)
	s := open(t, options(srv.URL(), nil))
	createVerify(t, s, storetest.Alice) // the tag registered
	h := holding(s)
	var wg sync.WaitGroup
	fillBatches(t, s, h, &wg)
	for i := range 3 {
		wg.Go(func() { _ = s.AckEvent(context.Background(), ackOf(i), false) })
	}
	waitFor(t, "the calls queued", func() bool { return s.QueuedCalls() == 3 })
	close(h.release)
	within(t, 30*time.Second, "the calls", wg.Wait)
	if n := s.StaleQueuedCalls(); n != 0 {
		t.Errorf("the queue still points to %d sent calls", n)
	}
}

// TestWaitingCallsShareOneWait: when writes wait for a replica, calls made
// at once share round trips and one WAIT per batch, each call getting the
// WAIT's verdict: success with the replica up (which then has every
// call's write), ErrUnavailable ("0 of 1 replicas") for every call of a
// batch with the replica frozen.
func TestWaitingCallsShareOneWait(t *testing.T) {
	primary := redistest.Start(t)
	replica := redistest.StartReplica(t, primary)
	o := options(primary.URL(), nil)
	o.WaitReplicas, o.WaitTimeout, o.Timeout = 1, time.Second, 10*time.Second
	s := open(t, o)
	ctx := context.Background()
	createVerify(t, s, storetest.Alice) // the tag registered
	const n = 20
	ids := make([]string, 2*n)
	run := func(first int) []error {
		h := holding(s)
		errs := make([]error, n)
		var wg sync.WaitGroup
		for i := range n {
			wg.Go(func() {
				sess, err := create(ctx, s, first+i)
				ids[first+i], errs[i] = sess.ID, err
			})
		}
		waitFor(t, "every call in flight or queued", func() bool { return h.calls.Load()+int64(s.QueuedCalls()) == n })
		close(h.release)
		within(t, 30*time.Second, "the calls", wg.Wait)
		if got, want := h.trips.Load(), int64(redisstore.MaxBatchesInFlight+1); got > want {
			t.Errorf("%d calls at once took %d round trips, want at most %d", n, got, want)
		}
		return errs
	}

	before := commandCalls(t, primary.Client())["wait"]
	errs := run(0)
	if waits := commandCalls(t, primary.Client())["wait"] - before; waits > redisstore.MaxBatchesInFlight+1 {
		t.Errorf("%d calls at once sent %d WAITs, want at most %d", n, waits, redisstore.MaxBatchesInFlight+1)
	}
	for i, err := range errs {
		if err != nil {
			t.Errorf("call %d = %v", i, err)
		}
	}
	// Each acknowledged write is on the replica.
	for i, id := range ids[:n] {
		if ok, err := replica.Client().HExists(ctx, redisstore.SessionsKey(storetest.To), id).Result(); err != nil || !ok {
			t.Errorf("replica lacks acknowledged session %d (%q): %v %v", i, id, ok, err)
		}
	}

	replica.Stop()
	defer replica.Cont()
	for i, err := range run(n) {
		if !errors.Is(err, matcher.ErrUnavailable) || !strings.Contains(err.Error(), "0 of 1 replicas") {
			t.Errorf("call %d with the replica frozen = %v, want ErrUnavailable (WAIT)", i, err)
		}
	}
}
