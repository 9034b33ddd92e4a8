package gateway

import (
	"bytes"
	"strings"
	"testing"
)

// TestReadAllReservesLittleOnTheClientsWord: a stated Content-Length is
// the client's word before any byte or signature arrived, so readAll
// reserves at most maxPresized on it, and still reads a longer body whole.
func TestReadAllReservesLittleOnTheClientsWord(t *testing.T) {
	b, err := readAll(strings.NewReader("x"), maxBody)
	if err != nil || string(b) != "x" {
		t.Fatalf("readAll = %q, %v", b, err)
	}
	if cap(b) > maxPresized+1 {
		t.Fatalf("a stated %d-byte body that sent 1 byte reserved %d bytes", maxBody, cap(b))
	}
	long := bytes.Repeat([]byte("a"), 3*maxPresized)
	b, err = readAll(bytes.NewReader(long), int64(len(long)))
	if err != nil || !bytes.Equal(b, long) {
		t.Fatalf("a %d-byte body read as %d bytes, %v", len(long), len(b), err)
	}
}
