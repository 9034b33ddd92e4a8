package redisstore

import (
	"errors"
	"strings"
	"testing"
)

// TestAssembleSkipsClaim: the parts' claim field (a linked ingest's mark)
// is no part: the text is the parts in order without it.
func TestAssembleSkipsClaim(t *testing.T) {
	got, err := assemble([]any{"2", "913", partsClaim, "wamid.2", "1", "Code 482"})
	if err != nil || got != "Code 482913" {
		t.Fatalf("assemble = %q, %v", got, err)
	}
	for _, v := range []any{[]any{"1"}, []any{"x", "a"}, []any{"1", int64(2)}, "1"} {
		if got, err := assemble(v); !errors.Is(err, errReplyShape) {
			t.Errorf("assemble(%v) = %q, %v; want errReplyShape", v, got, err)
		}
	}
}

// FuzzAssemble: assemble never panics; what it accepts is made of the
// parts' texts, never of the claim's value.
func FuzzAssemble(f *testing.F) {
	f.Add("1", "Code ", "2", "482913")
	f.Add(partsClaim, "wamid.1", "1", "482913")
	f.Add("x", "a", "1", "b")
	f.Add("-1", "a", "99999999999999999999", "b")
	f.Fuzz(func(t *testing.T, k1, v1, k2, v2 string) {
		got, err := assemble([]any{k1, v1, k2, v2})
		if err != nil {
			if !errors.Is(err, errReplyShape) {
				t.Fatalf("assemble: %v, not errReplyShape", err)
			}
			return
		}
		want := 0
		if k1 != partsClaim {
			want += len(v1)
		}
		if k2 != partsClaim {
			want += len(v2)
		}
		if len(got) != want || (k1 != partsClaim && !strings.Contains(got, v1)) {
			t.Fatalf("assemble(%q %q %q %q) = %q", k1, v1, k2, v2, got)
		}
	})
}
