// Package connlimit caps the open connections of a listener. At the cap, a
// new connection takes the place of the oldest one that has not sent a
// full request yet: first those idle or still sending a request's header,
// then those whose request's body is still on its way (a handler waiting
// on a trickled body). So a flood of idle or slow connections cannot
// starve a real client. When every open connection has sent its request
// and is being answered, the new one is closed at once (its client
// retries) rather than left waiting in the kernel's queue behind requests
// that may last minutes.
//
// The listener learns a connection's phase from the http.Server's hooks:
// ConnState, ConnContext, and Handler around the server's handler, which
// sees when a request's body has been read.
package connlimit

import (
	"container/list"
	"net"
	"net/http"
	"sync"
	"sync/atomic"
)

// Listener wraps a net.Listener. Its ConnState and ConnContext must be
// the http.Server's hooks, and the server's handler wrapped by Handler.
type Listener struct {
	net.Listener
	max atomic.Int64
	// OnShed, when set, is called outside the lock each time a connection
	// is closed at the cap: evicted (an idle or unfinished one made room)
	// or refused (every open one had sent its whole request).
	OnShed func(evicted bool)

	mu    sync.Mutex
	conns list.List // of *conn, oldest first
}

// New caps ln at max open connections; 0 means no cap.
func New(ln net.Listener, max int) *Listener {
	l := &Listener{Listener: ln}
	l.SetMax(max)
	return l
}

// SetMax changes the cap for the connections accepted from now on; 0
// means no cap. Connections already open are left alone.
func (l *Listener) SetMax(max int) { l.max.Store(int64(max)) }

// Open is the number of connections accepted and not yet closed.
func (l *Listener) Open() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.conns.Len()
}

// Active is the number of open connections serving a request, whether
// or not its body has arrived.
func (l *Listener) Active() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	n := 0
	for e := l.conns.Front(); e != nil; e = e.Next() {
		if e.Value.(*conn).phase != idle {
			n++
		}
	}
	return n
}

// phase is where a connection is in its request.
type phase int

const (
	idle      phase = iota // no request yet, or its header still arriving
	receiving              // header read, body still arriving
	busy                   // whole request read: being answered
)

// conn is an accepted connection.
type conn struct {
	net.Conn
	l     *Listener
	el    *list.Element // nil once closed or chosen to be closed
	phase phase         // guarded by l.mu
	once  sync.Once
}

// Close closes the connection and frees its place.
func (c *conn) Close() error {
	c.forget()
	return c.Conn.Close()
}

// forget frees the connection's place.
func (c *conn) forget() {
	c.once.Do(func() {
		c.l.mu.Lock()
		if c.el != nil {
			c.l.conns.Remove(c.el)
			c.el = nil
		}
		c.l.mu.Unlock()
	})
}

// setPhase records c's phase. A connection already closed for another
// keeps no place, so there is nothing to record.
func (c *conn) setPhase(p phase) {
	c.l.mu.Lock()
	if c.el != nil {
		c.phase = p
	}
	c.l.mu.Unlock()
}

// Accept waits for a connection and admits it, closing the oldest idle or
// unfinished one at the cap. At the cap with every connection busy, it
// closes the new one and waits for the next.
func (l *Listener) Accept() (net.Conn, error) {
	for {
		nc, err := l.Listener.Accept()
		if err != nil {
			return nil, err
		}
		c, evicted := l.admit(nc)
		if c != nil {
			if evicted && l.OnShed != nil {
				l.OnShed(true)
			}
			return c, nil
		}
		_ = nc.Close()
		if l.OnShed != nil {
			l.OnShed(false)
		}
	}
}

// admit records nc, closing at the cap the connection it replaces, or
// returns a nil conn when nc must be refused. The victim is closed under
// the lock: its phase cannot turn busy between the choice and the close,
// so a request whose header has been read when the choice is made is never
// cut off.
func (l *Listener) admit(nc net.Conn) (c *conn, evicted bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if max := l.max.Load(); max > 0 && int64(l.conns.Len()) >= max {
		victim := l.oldest(idle)
		if victim == nil {
			victim = l.oldest(receiving)
		}
		if victim == nil {
			return nil, false
		}
		l.conns.Remove(victim.el)
		victim.el = nil
		// The raw close: the wrapper's would take the lock. The server's
		// own Close of the wrapper later finds its place already freed.
		_ = victim.Conn.Close()
		evicted = true
	}
	c = &conn{Conn: nc, l: l}
	c.el = l.conns.PushBack(c)
	return c, evicted
}

// oldest is the oldest open connection in phase p, or nil.
func (l *Listener) oldest(p phase) *conn {
	for e := l.conns.Front(); e != nil; e = e.Next() {
		if v := e.Value.(*conn); v.phase == p {
			return v
		}
	}
	return nil
}

// ConnState follows the http.Server's view of each connection: one
// reading its first request's header (StateNew) or waiting between
// requests (StateIdle) is idle; one whose request header has been read
// (StateActive) is receiving until Handler sees its body end.
func (l *Listener) ConnState(nc net.Conn, state http.ConnState) {
	c, ok := nc.(*conn)
	if !ok || c.l != l {
		return
	}
	switch state {
	case http.StateNew, http.StateIdle:
		c.setPhase(idle)
	case http.StateActive:
		c.setPhase(receiving)
	case http.StateHijacked, http.StateClosed:
		c.forget()
	}
}
