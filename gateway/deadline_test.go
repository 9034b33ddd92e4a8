package gateway

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"
)

type ctxKey struct{}

// closed reports whether ch is closed within d.
func closed(ch <-chan struct{}, d time.Duration) bool {
	select {
	case <-ch:
		return true
	default:
	}
	select {
	case <-ch:
		return true
	case <-time.After(d):
		return false
	}
}

// TestBudgetCtxIsWithTimeout: whichever of its deadline, the parent's
// cancellation and stop comes first, and whether Done was asked before,
// the budget's Err and Done say what context.WithTimeout's would.
func TestBudgetCtxIsWithTimeout(t *testing.T) {
	const d = 30 * time.Millisecond
	for _, tc := range []struct {
		name      string
		doneFirst bool
		event     string // "deadline", "parent", "stop"
		want      error
	}{
		{"deadline passes", false, "deadline", context.DeadlineExceeded},
		{"deadline passes while Done is watched", true, "deadline", context.DeadlineExceeded},
		{"parent cancelled", false, "parent", context.Canceled},
		{"parent cancelled while Done is watched", true, "parent", context.Canceled},
		{"stopped", false, "stop", context.Canceled},
		{"stopped while Done is watched", true, "stop", context.Canceled},
	} {
		t.Run(tc.name, func(t *testing.T) {
			parent, cancelParent := context.WithCancel(context.WithValue(context.Background(), ctxKey{}, "v"))
			defer cancelParent()
			c := withBudget(parent, d)
			ref, cancelRef := context.WithTimeout(parent, d)
			defer cancelRef()
			if dl, ok := c.Deadline(); !ok || time.Until(dl) > d || dl.Before(time.Now()) {
				t.Fatalf("Deadline = %v %v, want within %v", dl, ok, d)
			}
			if c.Err() != nil || c.Value(ctxKey{}) != "v" {
				t.Fatalf("before: Err %v, Value %v", c.Err(), c.Value(ctxKey{}))
			}
			var done <-chan struct{}
			if tc.doneFirst {
				done = c.Done()
				if closed(done, 0) {
					t.Fatal("Done closed before anything happened")
				}
				if c.Value(ctxKey{}) != "v" {
					t.Fatal("Value lost once Done was asked")
				}
			}
			switch tc.event {
			case "deadline":
				time.Sleep(d + 10*time.Millisecond)
			case "parent":
				cancelParent()
			case "stop":
				c.stop()
				cancelRef()
			}
			if tc.doneFirst && !closed(done, time.Second) {
				t.Fatal("Done not closed")
			}
			if !closed(ref.Done(), time.Second) {
				t.Fatal("reference not done")
			}
			if err := c.Err(); !errors.Is(err, tc.want) || !errors.Is(ref.Err(), err) {
				t.Fatalf("Err = %v, WithTimeout's %v, want %v", err, ref.Err(), tc.want)
			}
			if !closed(c.Done(), 0) {
				t.Fatal("Done, asked after, not closed")
			}
			// What happens next changes nothing: the first error stays.
			cancelParent()
			c.stop()
			if err := c.Err(); !errors.Is(err, tc.want) {
				t.Fatalf("Err after more = %v, want %v", err, tc.want)
			}
		})
	}
}

// TestBudgetCtxParentDeadline: a parent's earlier deadline is the budget's.
func TestBudgetCtxParentDeadline(t *testing.T) {
	parent, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
	defer cancel()
	pd, _ := parent.Deadline()
	c := withBudget(parent, time.Hour)
	defer c.stop()
	if dl, _ := c.Deadline(); !dl.Equal(pd) {
		t.Fatalf("Deadline = %v, want the parent's %v", dl, pd)
	}
	if !closed(c.Done(), time.Second) || !errors.Is(c.Err(), context.DeadlineExceeded) {
		t.Fatalf("Err = %v at the parent's deadline", c.Err())
	}
}

// TestBudgetCtxChild: a context derived from the budget ends with it.
func TestBudgetCtxChild(t *testing.T) {
	c := withBudget(context.Background(), 20*time.Millisecond)
	defer c.stop()
	child, cancel := context.WithCancel(c)
	defer cancel()
	if !closed(child.Done(), time.Second) || !errors.Is(child.Err(), context.DeadlineExceeded) {
		t.Fatalf("child Err = %v", child.Err())
	}
	if !errors.Is(context.Cause(c), context.DeadlineExceeded) {
		t.Fatalf("Cause = %v", context.Cause(c))
	}
}

// TestBudgetCtxConcurrent: Done, Err, Value and stop from several
// goroutines (for -race).
func TestBudgetCtxConcurrent(t *testing.T) {
	c := withBudget(context.Background(), time.Millisecond)
	var wg sync.WaitGroup
	for i := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range 100 {
				_ = c.Err()
				_ = c.Value(ctxKey{})
				if i%2 == 0 {
					<-c.Done()
				}
			}
		}()
	}
	wg.Wait()
	c.stop()
	if c.Err() == nil {
		t.Fatal("no error after the deadline")
	}
}

// TestBudgetCtxAllocs: a budget nobody waits on is one allocation;
// context.WithTimeout under a request's context is four, and a timer.
func TestBudgetCtxAllocs(t *testing.T) {
	parent, cancel := context.WithCancel(context.Background())
	defer cancel()
	n := testing.AllocsPerRun(100, func() {
		c := withBudget(parent, storeBudget)
		_ = c.Err()
		c.stop()
	})
	if n > 1 {
		t.Errorf("withBudget: %v allocations, want 1", n)
	}
}
