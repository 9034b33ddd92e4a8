package redisstore

import (
	"errors"
	"fmt"
)

// errReplyShape is the error of a reply that is not what the call
// returns: a library of another shape, or a corrupt record.
var errReplyShape = errors.New("unexpected reply shape")

// replyArray reads an array reply of n elements; any length when n < 0.
func replyArray(v any, n int) ([]any, error) {
	l, ok := v.([]any)
	if !ok {
		return nil, fmt.Errorf("%w: %T, want an array", errReplyShape, v)
	}
	if n >= 0 && len(l) != n {
		return nil, fmt.Errorf("%w: %d elements, want %d", errReplyShape, len(l), n)
	}
	return l, nil
}

// replyString reads a string reply.
func replyString(v any) (string, error) {
	s, ok := v.(string)
	if !ok {
		return "", fmt.Errorf("%w: %T, want a string", errReplyShape, v)
	}
	return s, nil
}

// replyInt reads an integer reply.
func replyInt(v any) (int64, error) {
	n, ok := v.(int64)
	if !ok {
		return 0, fmt.Errorf("%w: %T, want an integer", errReplyShape, v)
	}
	return n, nil
}

// replyStrings reads an array reply of n strings; any length when n < 0.
func replyStrings(v any, n int) ([]string, error) {
	l, err := replyArray(v, n)
	if err != nil {
		return nil, err
	}
	out := make([]string, len(l))
	for i, e := range l {
		if out[i], err = replyString(e); err != nil {
			return nil, fmt.Errorf("element %d: %w", i+1, err)
		}
	}
	return out, nil
}

// replyOptStrings reads an array reply of strings and nils (HMGET): a nil
// element, a missing field, reads as ok false.
func replyOptStrings(v any) (vals []string, ok []bool, err error) {
	l, err := replyArray(v, -1)
	if err != nil {
		return nil, nil, err
	}
	vals, ok = make([]string, len(l)), make([]bool, len(l))
	for i, e := range l {
		if e == nil {
			continue
		}
		if vals[i], err = replyString(e); err != nil {
			return nil, nil, fmt.Errorf("element %d: %w", i+1, err)
		}
		ok[i] = true
	}
	return vals, ok, nil
}

// replyPair reads a {integer, x} reply: the integer and x.
func replyPair(v any) (int64, any, error) {
	l, err := replyArray(v, 2)
	if err != nil {
		return 0, nil, err
	}
	n, err := replyInt(l[0])
	if err != nil {
		return 0, nil, fmt.Errorf("element 1: %w", err)
	}
	return n, l[1], nil
}
