package connlimit

import (
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"
)

// pipeListener hands out the server ends of net.Pipe pairs.
type pipeListener struct{ conns chan net.Conn }

func (p *pipeListener) Accept() (net.Conn, error) {
	c, ok := <-p.conns
	if !ok {
		return nil, net.ErrClosed
	}
	return c, nil
}
func (p *pipeListener) Close() error   { return nil }
func (p *pipeListener) Addr() net.Addr { return &net.TCPAddr{} }

// dial gives l a new connection and returns the client's end with the
// server's end as Accept returned it.
func dial(t *testing.T, l *Listener, p *pipeListener) (client net.Conn, server net.Conn) {
	t.Helper()
	client, s := net.Pipe()
	p.conns <- s
	server, err := l.Accept()
	if err != nil {
		t.Fatal(err)
	}
	return client, server
}

// closed reports whether the server closed the client's pipe.
func closed(c net.Conn) bool {
	_ = c.SetReadDeadline(time.Now().Add(50 * time.Millisecond))
	_, err := c.Read(make([]byte, 1))
	return errors.Is(err, io.EOF) || errors.Is(err, io.ErrClosedPipe)
}

// serve runs a request on server connection s through l's hooks, as the
// http.Server would once its header is read: body is the request's body
// ("" for none), length its Content-Length (-1: chunked), and the handler
// reads read bytes of it, then returns without the connection going idle.
func serve(t *testing.T, l *Listener, s net.Conn, body string, length int64, read int) {
	t.Helper()
	l.ConnState(s, http.StateActive)
	r := httptest.NewRequest("POST", "/", nil)
	if body != "" {
		r.Body = io.NopCloser(strings.NewReader(body))
	}
	r.ContentLength = length
	r = r.WithContext(l.ConnContext(context.Background(), s))
	l.Handler(http.HandlerFunc(func(_ http.ResponseWriter, r *http.Request) {
		if _, err := io.ReadFull(r.Body, make([]byte, read)); err != nil {
			t.Errorf("reading the body: %v", err)
		}
		if read == len(body) {
			_, _ = io.Copy(io.Discard, r.Body)
		}
	})).ServeHTTP(httptest.NewRecorder(), r)
}

// answer gives server connection s a request without a body, being answered.
func answer(t *testing.T, l *Listener, s net.Conn) { serve(t, l, s, "", 0, 0) }

func TestEvictsOldestIdleAtCap(t *testing.T) {
	p := &pipeListener{conns: make(chan net.Conn, 1)}
	var evicted, refused int
	l := New(p, 3)
	l.OnShed = func(e bool) {
		if e {
			evicted++
		} else {
			refused++
		}
	}
	a, as := dial(t, l, p)
	b, bs := dial(t, l, p)
	c, cs := dial(t, l, p)
	answer(t, l, as) // a is being answered: never evicted
	l.ConnState(bs, http.StateIdle)
	l.ConnState(cs, http.StateNew)

	d, ds := dial(t, l, p) // b is the oldest closable
	if !closed(b) || closed(a) || closed(c) {
		t.Fatalf("after d: a, b, c closed = %v %v %v, want only b", closed(a), closed(b), closed(c))
	}
	_, es := dial(t, l, p) // then c
	if !closed(c) || closed(a) || closed(d) {
		t.Fatal("after e: want c closed, a and d open")
	}
	if l.Open() != 3 || evicted != 2 {
		t.Fatalf("open = %d, evicted = %d; want 3 and 2", l.Open(), evicted)
	}

	// A connection that finishes its request becomes closable again; one
	// that closes frees its place.
	answer(t, l, ds)
	_ = es.Close()
	l.ConnState(as, http.StateClosed)
	if l.Open() != 1 {
		t.Fatalf("open = %d after two closes, want 1", l.Open())
	}
	_ = d
}

func TestRefusesWhenAllBusy(t *testing.T) {
	p := &pipeListener{conns: make(chan net.Conn, 2)}
	refused := make(chan struct{}, 1)
	l := New(p, 1)
	l.OnShed = func(evicted bool) {
		if !evicted {
			refused <- struct{}{}
		}
	}
	a, as := dial(t, l, p)
	answer(t, l, as)

	full, bs := net.Pipe()
	p.conns <- bs
	accepted := make(chan net.Conn, 1)
	go func() {
		c, _ := l.Accept()
		accepted <- c
	}()
	<-refused
	if !closed(full) || closed(a) {
		t.Fatal("at the cap with every connection busy, the new one is closed and the busy one kept")
	}
	// Once a finishes its request, the next connection takes its place.
	l.ConnState(as, http.StateIdle)
	next, ns := net.Pipe()
	p.conns <- ns
	if c := <-accepted; c == nil {
		t.Fatal("next connection not accepted")
	}
	if !closed(a) || closed(next) {
		t.Fatal("want a evicted for the next connection")
	}
}

// TestEvictsUnfinishedAfterIdle: at the cap with no idle connection, the
// oldest one whose request's body is still arriving is closed; one whose
// body has been read in full, by its length or to its end, is not.
func TestEvictsUnfinishedAfterIdle(t *testing.T) {
	p := &pipeListener{conns: make(chan net.Conn, 1)}
	l := New(p, 4)
	a, as := dial(t, l, p)
	b, bs := dial(t, l, p)
	c, cs := dial(t, l, p)
	d, ds := dial(t, l, p)
	serve(t, l, as, "hello", 5, 5)    // whole body read
	serve(t, l, bs, "hello", 5, 2)    // two bytes of five so far
	serve(t, l, cs, "chunked", -1, 7) // chunked, read to its end
	serve(t, l, ds, "chunked", -1, 3) // chunked, unfinished
	if l.Active() != 4 {
		t.Fatalf("active = %d, want 4", l.Active())
	}

	e, es := dial(t, l, p) // b: the oldest unfinished
	if !closed(b) || closed(a) || closed(c) || closed(d) {
		t.Fatalf("after e: a, b, c, d closed = %v %v %v %v, want only b", closed(a), closed(b), closed(c), closed(d))
	}
	f, _ := dial(t, l, p) // e, new and idle, goes before d
	if !closed(e) || closed(d) {
		t.Fatal("after f: want e (idle) closed before d (unfinished)")
	}
	_, _ = dial(t, l, p) // f, still idle
	if !closed(f) || closed(d) {
		t.Fatal("after g: want f closed, d open")
	}
	// A connection closed for another keeps no phase.
	l.ConnState(es, http.StateActive)
	if l.Active() != 3 {
		t.Fatalf("active = %d after an evicted connection's late state, want 3", l.Active())
	}
}

func TestNoCap(t *testing.T) {
	p := &pipeListener{conns: make(chan net.Conn, 1)}
	l := New(p, 0)
	var clients []net.Conn
	for range 5 {
		c, _ := dial(t, l, p)
		clients = append(clients, c)
	}
	for i, c := range clients {
		if closed(c) {
			t.Fatalf("connection %d closed without a cap", i)
		}
	}
	if l.Open() != 5 {
		t.Fatalf("open = %d, want 5", l.Open())
	}
}

// lockProbe is a server connection that, when closed, records whether its
// listener's lock was free: a free lock is a window in which the server
// could start a request on a connection already chosen to be closed.
type lockProbe struct {
	net.Conn
	l        *Listener
	unlocked chan bool
}

func (p *lockProbe) Close() error {
	free := p.l.mu.TryLock()
	if free {
		p.l.mu.Unlock()
	}
	select {
	case p.unlocked <- free:
	default:
	}
	return p.Conn.Close()
}

// TestVictimClosedWhenChosen: the connection evicted at the cap is closed
// while it is chosen, with no moment between in which its request could
// start and then be cut off.
func TestVictimClosedWhenChosen(t *testing.T) {
	p := &pipeListener{conns: make(chan net.Conn, 1)}
	l := New(p, 1)
	_, s := net.Pipe()
	probe := &lockProbe{Conn: s, l: l, unlocked: make(chan bool, 1)}
	p.conns <- probe
	if _, err := l.Accept(); err != nil {
		t.Fatal(err)
	}
	dial(t, l, p) // evicts the probe, idle
	if free := <-probe.unlocked; free {
		t.Fatal("the victim was closed after the listener let go of its choice")
	}
}
