// Package connlimit caps the open connections of a listener. At the cap, a
// new connection takes the place of the oldest one that is idle or has not
// sent a full request yet, so a flood of idle connections cannot starve a
// real client; when every open connection is busy with a request, the new
// one is closed at once (its client retries) rather than left waiting in
// the kernel's queue behind requests that may last minutes.
package connlimit

import (
	"container/list"
	"net"
	"net/http"
	"sync"
	"sync/atomic"
)

// Listener wraps a net.Listener. Its ConnState must be the http.Server's
// ConnState hook: it tells which connections are busy.
type Listener struct {
	net.Listener
	max atomic.Int64
	// OnShed, when set, is called outside the lock each time a connection
	// is closed at the cap: evicted (an idle or unfinished one made room)
	// or refused (every open one was busy).
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

// conn is an accepted connection; busy while it serves a request.
type conn struct {
	net.Conn
	l    *Listener
	el   *list.Element // nil once closed
	busy bool
	once sync.Once
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

// Accept waits for a connection and admits it, closing the oldest idle or
// unfinished one at the cap. At the cap with every connection busy, it
// closes the new one and waits for the next.
func (l *Listener) Accept() (net.Conn, error) {
	for {
		nc, err := l.Listener.Accept()
		if err != nil {
			return nil, err
		}
		c, victim := l.admit(nc)
		if victim != nil {
			_ = victim.Close()
		}
		if c != nil {
			if victim != nil && l.OnShed != nil {
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

// admit records nc, choosing under the lock the connection to close for
// it (victim), or returns a nil conn when nc must be refused.
func (l *Listener) admit(nc net.Conn) (c *conn, victim *conn) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if max := l.max.Load(); max > 0 && int64(l.conns.Len()) >= max {
		for e := l.conns.Front(); e != nil; e = e.Next() {
			if v := e.Value.(*conn); !v.busy {
				victim = v
				break
			}
		}
		if victim == nil {
			return nil, nil
		}
		// Its place is freed now, not when its Close runs.
		l.conns.Remove(victim.el)
		victim.el = nil
	}
	c = &conn{Conn: nc, l: l}
	c.el = l.conns.PushBack(c)
	return c, victim
}

// ConnState follows the http.Server's view of each connection: a
// connection reading its first request (StateNew) or waiting between
// requests (StateIdle) may be closed at the cap; one serving a request
// (StateActive) may not.
func (l *Listener) ConnState(nc net.Conn, state http.ConnState) {
	c, ok := nc.(*conn)
	if !ok || c.l != l {
		return
	}
	switch state {
	case http.StateActive, http.StateIdle, http.StateNew:
		l.mu.Lock()
		c.busy = state == http.StateActive
		l.mu.Unlock()
	case http.StateHijacked, http.StateClosed:
		c.forget()
	}
}
