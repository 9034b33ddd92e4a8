package memstore

import (
	"context"
	"errors"
	"strconv"
	"testing"
	"time"

	"github.com/mogate/mogate/matcher"
)

// gate is a journal whose commits complete when the test says so.
type gate struct {
	appended chan []Record
	release  chan error
}

// gateCommit may be waited for any number of times, as a journal's
// commit.
type gateCommit struct {
	done chan struct{}
	err  *error
}

func (c gateCommit) Wait() error { <-c.done; return *c.err }

func (g *gate) Append(recs ...Record) Commit {
	c := gateCommit{done: make(chan struct{}), err: new(error)}
	go func() { *c.err = <-g.release; close(c.done) }()
	g.appended <- recs
	return c
}

// TestEventEntersWithItsChange: a final status's event is in the event
// table once the step that made it is journaled, before it is durable —
// no callback after the fact — and it is claimed only once durable.
func TestEventEntersWithItsChange(t *testing.T) {
	g := &gate{appended: make(chan []Record, 4), release: make(chan error, 4)}
	c := &clock{t: time.Date(2026, 11, 22, 12, 0, 0, 0, time.UTC)}
	m := New(Options{Journal: g, Now: c.Now})
	g.release <- nil
	s, _, err := m.createOnce(matcher.CreateRequest{Key: "k", Number: alice, Code: "482913", To: to, TTL: time.Minute})
	if err != nil {
		t.Fatal(err)
	}
	<-g.appended
	done := make(chan error, 1)
	go func() { _, err := m.cancel(s.ID); done <- err }()
	recs := <-g.appended // the cancel is journaled, not yet durable
	if len(recs) != 1 || recs[0].Op != OpCancel {
		t.Fatalf("journaled %+v", recs)
	}
	// The event enters in the journal call, just after Append returned:
	// wait for it, the cancel not yet durable (release is not sent).
	for deadline := time.Now().Add(5 * time.Second); m.Undelivered() != 1; time.Sleep(time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("%d events in the table with the cancel journaled", m.Undelivered())
		}
	}
	claimed := make(chan []matcher.Event, 1)
	go func() {
		evs, err := m.ClaimEvents(bg, time.Minute, 10)
		if err != nil {
			t.Error(err)
		}
		claimed <- evs
	}()
	g.release <- nil
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	evs := <-claimed
	if len(evs) != 1 || evs[0].ID != matcher.EventID(s.ID, matcher.Cancelled) || evs[0].Session.Reason != matcher.ReasonCancelledByAPI {
		t.Fatalf("claimed %+v", evs)
	}
}

// TestEventOfFailedStepIsNotClaimed: the event of a change the journal
// failed to make durable is never handed out.
func TestEventOfFailedStepIsNotClaimed(t *testing.T) {
	m, _, j := newTest(t)
	lost := create(t, m, alice, "482913")
	kept := create(t, m, mallet, "111111")
	j.fail.Store(true)
	if _, err := m.cancel(lost.ID); err == nil {
		t.Fatal("cancel acknowledged with a failing journal")
	}
	if evs, err := m.ClaimEvents(bg, time.Minute, 10); !errors.Is(err, matcher.ErrUnavailable) || len(evs) != 0 {
		t.Fatalf("claimed %+v, %v", evs, err)
	}
	j.fail.Store(false)
	if _, err := m.cancel(kept.ID); err != nil {
		t.Fatal(err)
	}
	evs, err := m.ClaimEvents(bg, time.Minute, 10)
	if err != nil || len(evs) != 1 || evs[0].Session.ID != kept.ID {
		t.Fatalf("claimed %+v, %v", evs, err)
	}
}

// TestAckEvents: acking a claim's events in one call is what acking each
// does: none is claimed again, dead ones count as given up on, and a
// cancelled context acks nothing.
func TestAckEvents(t *testing.T) {
	m := New(Options{})
	for i := range 6 {
		s, _, err := m.createOnce(matcher.CreateRequest{Key: "k", Number: "+1415555010" + strconv.Itoa(i), To: to, TTL: time.Hour})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := m.cancel(s.ID); err != nil {
			t.Fatal(err)
		}
	}
	evs, err := m.ClaimEvents(bg, time.Nanosecond, 10)
	if err != nil || len(evs) != 6 {
		t.Fatalf("claimed %d events: %v", len(evs), err)
	}
	ctx, cancel := context.WithCancel(bg)
	cancel()
	if err := m.AckEvents(ctx, evs, false); err == nil || m.Undelivered() != 6 {
		t.Fatalf("AckEvents on a cancelled context: %v, %d undelivered", err, m.Undelivered())
	}
	if err := m.AckEvents(bg, evs[:4], false); err != nil {
		t.Fatal(err)
	}
	if err := m.AckEvents(bg, evs[4:], true); err != nil {
		t.Fatal(err)
	}
	if n := m.Undelivered(); n != 0 {
		t.Fatalf("%d undelivered after AckEvents", n)
	}
	for i, ev := range evs {
		s, err := m.Get(bg, ev.Session.ID)
		if want := matcher.Delivered; i >= 4 && s.Notified != matcher.Dead || i < 4 && s.Notified != want || err != nil {
			t.Errorf("event %d: session notified %v (%v)", i, s.Notified, err)
		}
	}
	if again, _ := m.ClaimEvents(bg, time.Hour, 10); len(again) != 0 {
		t.Fatalf("%d events claimed again after AckEvents", len(again))
	}
}
