package gateway

import (
	"bytes"
	"errors"
	"io"
	"net/http"
	"strings"
	"testing"
)

// TestReadAllReservesLittleOnTheClientsWord: a stated Content-Length is
// the client's word before any byte or signature arrived, so readAll
// reserves at most maxPresized on it, and still reads a longer body whole.
func TestReadAllReservesLittleOnTheClientsWord(t *testing.T) {
	b, err := readAll(strings.NewReader("x"), maxBody, maxBody)
	if err != nil || string(b) != "x" {
		t.Fatalf("readAll = %q, %v", b, err)
	}
	if cap(b) > maxPresized+1 {
		t.Fatalf("a stated %d-byte body that sent 1 byte reserved %d bytes", maxBody, cap(b))
	}
	long := bytes.Repeat([]byte("a"), 3*maxPresized)
	b, err = readAll(bytes.NewReader(long), int64(len(long)), maxBody)
	if err != nil || !bytes.Equal(b, long) {
		t.Fatalf("a %d-byte body read as %d bytes, %v", len(long), len(b), err)
	}
}

// TestReadAllBounded: readAll stops past its limit with an
// *http.MaxBytesError however long the body said it was (net/http bounds
// a body to its stated length; a body some middleware replaced may be
// longer), having read one byte past the limit, no more.
func TestReadAllBounded(t *testing.T) {
	for _, stated := range []int64{-1, 10, maxBody, maxBody + 1} {
		r := &countingReader{r: bytes.NewReader(bytes.Repeat([]byte("a"), 3*maxBody))}
		b, err := readAll(r, stated, maxBody)
		if tooLarge := (*http.MaxBytesError)(nil); !errors.As(err, &tooLarge) || tooLarge.Limit != maxBody {
			t.Fatalf("stated %d: %v, want an *http.MaxBytesError of %d", stated, err, maxBody)
		}
		if len(b) > maxBody || r.n > maxBody+1 {
			t.Fatalf("stated %d: returned %d bytes, read %d", stated, len(b), r.n)
		}
	}
	b, err := readAll(strings.NewReader(strings.Repeat("a", maxBody)), -1, maxBody)
	if err != nil || len(b) != maxBody {
		t.Fatalf("a body of exactly the limit: %d bytes, %v", len(b), err)
	}
}

type countingReader struct {
	r io.Reader
	n int
}

func (c *countingReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n += n
	return n, err
}
