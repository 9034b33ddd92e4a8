package gateway

import (
	"context"
	"sync"
	"time"
)

// budgetCtx is context.WithTimeout(parent, d) for a request's storage
// work, without what that costs when nothing waits on the context: a
// timer, a registration with the parent and four allocations (about 1 µs
// per webhook in BenchmarkWebhookTwilio) are made when Done is first
// called (go-redis waiting for a connection does), never when only Err is
// asked (all the memory store does). Until then Err compares the clock with
// the deadline. Its errors are WithTimeout's: the first one reported
// stays.
type budgetCtx struct {
	parent   context.Context
	deadline time.Time

	mu     sync.Mutex
	err    error           // the first error reported, or set by stop
	inner  context.Context // WithDeadline(parent, deadline), made by Done
	cancel context.CancelFunc
}

// withBudget starts d of storage time on parent; the caller calls stop
// when the work is done, as it would WithTimeout's cancel.
func withBudget(parent context.Context, d time.Duration) *budgetCtx {
	deadline := time.Now().Add(d)
	if pd, ok := parent.Deadline(); ok && pd.Before(deadline) {
		deadline = pd // as WithTimeout: the parent's deadline when earlier
	}
	return &budgetCtx{parent: parent, deadline: deadline}
}

func (c *budgetCtx) Deadline() (time.Time, bool) { return c.deadline, true }

func (c *budgetCtx) Done() <-chan struct{} {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.inner == nil {
		c.inner, c.cancel = context.WithDeadline(c.parent, c.deadline)
		if c.err != nil {
			c.cancel() // stopped, or past its deadline already: closed at once
		}
	}
	return c.inner.Done()
}

func (c *budgetCtx) Err() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.errLocked()
}

func (c *budgetCtx) errLocked() error {
	if c.err == nil {
		switch {
		case c.inner != nil:
			c.err = c.inner.Err()
		case c.parent.Err() != nil:
			c.err = c.parent.Err()
		case !time.Now().Before(c.deadline):
			c.err = context.DeadlineExceeded
		}
	}
	return c.err
}

// Value is the parent's, or, once Done was called, the inner context's:
// a context derived from this one then registers with the inner one (as
// with a *cancelCtx parent), rather than watch it from a goroutine.
func (c *budgetCtx) Value(key any) any {
	c.mu.Lock()
	inner := c.inner
	c.mu.Unlock()
	if inner != nil {
		return inner.Value(key)
	}
	return c.parent.Value(key)
}

// stop ends the budget: WithTimeout's cancel.
func (c *budgetCtx) stop() {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.errLocked() == nil {
		c.err = context.Canceled
	}
	if c.inner != nil {
		c.cancel()
	}
}

var _ context.Context = (*budgetCtx)(nil)
