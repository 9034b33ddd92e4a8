package connlimit

import (
	"errors"
	"io"
	"net"
	"net/http"
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
	l.ConnState(as, http.StateActive) // a is busy: never evicted
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
	l.ConnState(ds, http.StateActive)
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
	l.ConnState(as, http.StateActive)

	busy, bs := net.Pipe()
	p.conns <- bs
	accepted := make(chan net.Conn, 1)
	go func() {
		c, _ := l.Accept()
		accepted <- c
	}()
	<-refused
	if !closed(busy) || closed(a) {
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
