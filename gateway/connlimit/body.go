package connlimit

import (
	"context"
	"io"
	"net"
	"net/http"
)

type connKey struct{}

// ConnContext is the http.Server's ConnContext hook: it lets Handler find
// the connection a request arrived on.
func (l *Listener) ConnContext(ctx context.Context, nc net.Conn) context.Context {
	if c, ok := nc.(*conn); ok && c.l == l {
		return context.WithValue(ctx, connKey{}, c)
	}
	return ctx
}

// Handler wraps the server's handler: a request without a body is whole
// when the handler starts; one with a body is whole once the handler has
// read the body to its end. Until then its connection may be closed at the
// cap. Handlers see the same body, only counted.
func (l *Listener) Handler(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		c, ok := r.Context().Value(connKey{}).(*conn)
		switch {
		case !ok || c.l != l:
		case r.Body == nil || r.Body == http.NoBody || r.ContentLength == 0:
			c.setPhase(busy)
		default:
			r.Body = &body{ReadCloser: r.Body, c: c, left: r.ContentLength}
		}
		h.ServeHTTP(w, r)
	})
}

// body marks its connection busy when the request's body has been read
// to its end: at EOF, or once its Content-Length is in.
type body struct {
	io.ReadCloser
	c    *conn
	left int64 // bytes still to come; < 0: unknown (chunked)
	done bool
}

func (b *body) Read(p []byte) (int, error) {
	n, err := b.ReadCloser.Read(p)
	if b.left > 0 {
		b.left -= int64(n)
	}
	if !b.done && (err == io.EOF || b.left == 0) {
		b.done = true
		b.c.setPhase(busy)
	}
	return n, err
}
