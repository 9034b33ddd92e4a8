package redisstore

import (
	"encoding/hex"
	"errors"
	"slices"
	"testing"
)

// TestReplyShapes: every reply decoder returns a wrapped errReplyShape
// for a reply of another shape, and never panics.
func TestReplyShapes(t *testing.T) {
	bad := []any{nil, "x", int64(1), []any{}, []any{nil}, []any{"a", int64(2)}, []any{int64(1)}, map[any]any{}}
	for _, v := range bad {
		if _, err := replyStrings(v, 3); !errors.Is(err, errReplyShape) {
			t.Errorf("replyStrings(%#v, 3) = %v, want errReplyShape", v, err)
		}
		if _, _, err := replyPair(v); !errors.Is(err, errReplyShape) {
			t.Errorf("replyPair(%#v) = %v, want errReplyShape", v, err)
		}
		if _, err := decodeOutcome(0, v); err == nil {
			t.Errorf("decodeOutcome(0, %#v): no error", v)
		}
	}
	for _, v := range []any{nil, "x", []any{"1"}, []any{"1", int64(2)}, []any{"one", "a"}, []any{nil, "a"}} {
		if _, err := assemble(v); !errors.Is(err, errReplyShape) {
			t.Errorf("assemble(%#v) = %v, want errReplyShape", v, err)
		}
	}
	for _, v := range []any{nil, "x", []any{"a", int64(1)}} {
		if _, _, err := replyOptStrings(v); !errors.Is(err, errReplyShape) {
			t.Errorf("replyOptStrings(%#v) = %v, want errReplyShape", v, err)
		}
	}
	for _, v := range []any{nil, "1", []any{int64(1)}} {
		if _, err := replyInt(v); !errors.Is(err, errReplyShape) {
			t.Errorf("replyInt(%#v) = %v, want errReplyShape", v, err)
		}
	}
}

// TestReplyDecoded: replies of the right shape decode.
func TestReplyDecoded(t *testing.T) {
	if got, err := replyStrings([]any{"ok", "{}", ""}, 3); err != nil || !slices.Equal(got, []string{"ok", "{}", ""}) {
		t.Errorf("replyStrings = %q, %v", got, err)
	}
	if got, err := replyStrings([]any{}, -1); err != nil || len(got) != 0 {
		t.Errorf("replyStrings(empty, -1) = %q, %v", got, err)
	}
	if n, rest, err := replyPair([]any{int64(2), []any{}}); err != nil || n != 2 || rest == nil {
		t.Errorf("replyPair = %d %v %v", n, rest, err)
	}
	if got, ok, err := replyOptStrings([]any{"a", nil}); err != nil || !slices.Equal(got, []string{"a", ""}) || !slices.Equal(ok, []bool{true, false}) {
		t.Errorf("replyOptStrings = %q %v %v", got, ok, err)
	}
	if got, err := assemble([]any{"2", "b", "1", "a", "10", "c"}); err != nil || got != "abc" {
		t.Errorf("assemble = %q, %v", got, err)
	}
	if o, err := decodeOutcome(1, `{"k":1,"sid":"vrf_x"}`); err != nil || !o.Duplicate || o.SessionID != "vrf_x" {
		t.Errorf("decodeOutcome = %+v, %v", o, err)
	}
}

// TestDecodeTags: a list of home tags decodes (an empty Lua table reads as
// no tags); anything else is errReplyShape.
func TestDecodeTags(t *testing.T) {
	for _, j := range []string{"{}", "[]"} {
		if got, err := decodeTags(j); err != nil || len(got) != 0 {
			t.Errorf("decodeTags(%s) = %q, %v", j, got, err)
		}
	}
	if got, err := decodeTags(`["0a0b0c0d","a1b2c3d4"]`); err != nil || !slices.Equal(got, []string{"0a0b0c0d", "a1b2c3d4"}) {
		t.Errorf("decodeTags = %q, %v", got, err)
	}
	for _, j := range []string{"", "x", "null1", `{"a":1}`, `[1]`, `["short"]`, `["0a0b0c0x"]`, `["0a0b0c0d",2]`} {
		if got, err := decodeTags(j); !errors.Is(err, errReplyShape) {
			t.Errorf("decodeTags(%q) = %q, %v; want errReplyShape", j, got, err)
		}
	}
}

// FuzzDecodeTags: decodeTags never panics, and what it accepts are tags.
func FuzzDecodeTags(f *testing.F) {
	for _, s := range []string{"{}", "[]", `["0a0b0c0d"]`, `["0a0b0c0d","a1b2c3d4"]`, `["x"]`, `{"a":1}`, "null", ""} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, j string) {
		tags, err := decodeTags(j)
		if err != nil {
			if !errors.Is(err, errReplyShape) {
				t.Fatalf("decodeTags(%q): %v, not errReplyShape", j, err)
			}
			return
		}
		for _, tag := range tags {
			if b, err := hex.DecodeString(tag); err != nil || len(b) != 4 {
				t.Fatalf("decodeTags(%q) accepted %q", j, tag)
			}
		}
	})
}
