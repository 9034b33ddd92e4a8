package redisstore

import (
	"context"
	"fmt"
	"io"
	"net"
	"syscall"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
)

// replyErr is an error reply of Redis.
type replyErr string

func (e replyErr) Error() string { return string(e) }
func (replyErr) RedisError()     {}

// TestStaleSlotMap: connection failures and a cluster in change ask for a
// slot map reload; Redis's answers to the command itself and a caller
// giving up do not.
func TestStaleSlotMap(t *testing.T) {
	refused := &net.OpError{Op: "dial", Net: "tcp", Err: syscall.ECONNREFUSED}
	cases := []struct {
		err  error
		want bool
	}{
		{nil, false},
		{refused, true},
		{fmt.Errorf("redis: %w", refused), true},
		{&net.OpError{Op: "read", Net: "tcp", Err: syscall.ECONNRESET}, true},
		{io.EOF, true},
		{context.DeadlineExceeded, true},
		{replyErr("CLUSTERDOWN The cluster is down"), true},
		{replyErr("READONLY You can't write against a read only replica."), true},
		{replyErr("LOADING Redis is loading the dataset in memory"), true},
		{context.Canceled, false},
		{redis.Nil, false},
		{replyErr("ERR Function not found"), false},
		{replyErr("MOVED 3999 127.0.0.1:6381"), false}, // go-redis reloads on redirects itself
	}
	for _, tc := range cases {
		if got := staleSlotMap(tc.err); got != tc.want {
			t.Errorf("staleSlotMap(%v) = %v, want %v", tc.err, got, tc.want)
		}
	}
}

// TestClusterDialTimeout: a Cluster node that does not take a connection
// within a second counts as down, whatever the call timeout; a shorter
// timeout stays.
func TestClusterDialTimeout(t *testing.T) {
	for _, tc := range []struct{ timeout, want time.Duration }{
		{5 * time.Second, time.Second},
		{300 * time.Millisecond, 300 * time.Millisecond},
	} {
		c := newClusterClient(&redis.ClusterOptions{Addrs: []string{"127.0.0.1:1"}, DialTimeout: tc.timeout})
		if got := c.Options().DialTimeout; got != tc.want {
			t.Errorf("timeout %v: dial timeout %v, want %v", tc.timeout, got, tc.want)
		}
		c.Close()
	}
}
