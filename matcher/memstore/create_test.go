package memstore

import (
	"testing"
	"time"
	"unsafe"

	"github.com/mogate/mogate/matcher"
)

// newID returns prefix followed by 128 random bits whose first byte is the
// shard: a session id or page token of its own, for tests that build
// sessions.
func newID(prefix string, shard int) string {
	id, token := newIDs(prefix, shard)
	if prefix == tokenPrefix {
		return token
	}
	return id
}

// TestNewIDs: the id and page token newIDs cuts from one string are
// those of their raw bytes, each with its prefix, made for the shard, and
// differ.
func TestNewIDs(t *testing.T) {
	for _, prefix := range append(matcher.IDPrefixes(), "a_prefix_longer_than_sixteen_") {
		for _, shard := range []int{0, 17, numShards - 1} {
			id, token := newIDs(prefix, shard)
			p, raw, ok := parseID(id)
			if len(prefix) <= 16 && (!ok || idPrefixes[p] != prefix || idString(p, &raw) != id || raw[0] != byte(shard)) {
				t.Errorf("newIDs(%q, %d): id %q", prefix, shard, id)
			}
			if n, ok := shardOfID(id); !ok || n != shard {
				t.Errorf("newIDs(%q, %d): id %q of shard %d, %v", prefix, shard, id, n, ok)
			}
			rawTok, ok := parseToken(token)
			if !ok || renderID(tokenPrefix, &rawTok) != token || rawTok[0] != byte(shard) {
				t.Errorf("newIDs(%q, %d): page token %q", prefix, shard, token)
			}
			if rawTok == raw {
				t.Errorf("newIDs(%q, %d): id and page token of the same bits", prefix, shard)
			}
		}
	}
}

// TestIdempotencyKeepsOwnID: the idempotency table keeps its own copy of
// a session's id, not the id cut from the string it shares with the page
// token (newIDs), which would keep the token's bytes for the retention.
func TestIdempotencyKeepsOwnID(t *testing.T) {
	m := New(Options{})
	s, _, err := m.createOnce(matcher.CreateRequest{Key: "k", Number: alice, To: to, TTL: time.Hour, IdemKey: "i1", ReqHash: "h1"})
	if err != nil {
		t.Fatal(err)
	}
	is := &m.idem[fnv32("k", "i1")%numShards]
	kept := is.m["k\x00i1"]
	if kept != s.ID {
		t.Fatalf("idempotency table holds %q, want %q", kept, s.ID)
	}
	if unsafe.StringData(kept) == unsafe.StringData(s.ID) { //nolint:gosec // G103: compares where two strings' bytes are
		t.Error("the idempotency table keeps the id that shares its allocation with the page token")
	}
}

// TestTakeDigits: each byte value below 250 makes the digit of its value
// modulo 10, so that every digit comes from exactly 25 of the 256 values;
// the 6 others are skipped, and a source's bytes past a full code are
// left.
func TestTakeDigits(t *testing.T) {
	var counts [10]int
	skipped := 0
	for v := range 256 {
		var d [1]byte
		switch n := takeDigits(d[:], []byte{byte(v)}); {
		case n == 0:
			skipped++
			if v < 250 {
				t.Errorf("byte %d skipped", v)
			}
		case n == 1 && d[0] == '0'+byte(v%10) && v < 250:
			counts[v%10]++
		default:
			t.Errorf("byte %d: %d digits %q", v, n, d[:n])
		}
	}
	if counts != [10]int{25, 25, 25, 25, 25, 25, 25, 25, 25, 25} || skipped != 6 {
		t.Errorf("digits per value %v, %d skipped; want 25 each, 6 skipped", counts, skipped)
	}
	for _, tc := range []struct {
		src  []byte
		size int
		want string
	}{
		{[]byte{250, 7, 255, 251, 42, 249, 13}, 3, "729"},
		{[]byte{250, 7, 255, 251, 42, 249, 13}, 6, "7293"},
		{[]byte{0, 252, 253, 254, 9, 10, 99}, 2, "09"},
		{[]byte{250, 251, 252, 253, 254, 255}, 4, ""},
		{nil, 6, ""},
	} {
		dst := make([]byte, tc.size)
		if n := takeDigits(dst, tc.src); string(dst[:n]) != tc.want {
			t.Errorf("takeDigits(%d, %v) = %q, want %q", tc.size, tc.src, dst[:n], tc.want)
		}
	}
}

// TestRandomDigits: a generated code has the length asked, in decimal
// digits.
func TestRandomDigits(t *testing.T) {
	for _, n := range []int{1, 6, 8, 20, 200} {
		for range 100 {
			code := randomDigits(n)
			if len(code) != n {
				t.Fatalf("randomDigits(%d) = %q", n, code)
			}
			for i := range len(code) {
				if code[i] < '0' || code[i] > '9' {
					t.Fatalf("randomDigits(%d) = %q", n, code)
				}
			}
		}
	}
}
