package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"path/filepath"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"
)

const waitRow = "load: signed Twilio webhook → Redis store, WAIT 1 replica"

// benchWait runs the webhook load on one gateway on the Redis at addr with
// a replica attached, first without WAIT and then with redis_wait_replicas:
// 1, and compares the two. It starts the replica, with the primary's
// persistence settings, unless addr is the user's (external): that one
// must have a replica connected already, and is never flushed.
func benchWait(addr string, external bool, dir string, conns int, d time.Duration, log io.Writer, flush func(string) error) ([][]string, error) {
	if external {
		if n, err := connectedReplicas(addr); err != nil || n < 1 {
			why := "the Redis of --redis has no replica connected"
			if err != nil {
				why = err.Error()
			}
			return [][]string{{waitRow, "not run: " + why, "", ""}}, nil
		}
	} else {
		// The first sync at once, not after the default 5s delay.
		if err := configSet(addr, "repl-diskless-sync-delay", "0"); err != nil {
			return nil, err
		}
		replica, stop, err := startReplica(addr, filepath.Join(dir, "redis-replica"))
		if err != nil {
			return [][]string{{waitRow, "not run: " + err.Error(), "", ""}}, nil
		}
		defer stop()
		fmt.Fprintf(log, "started redis-server on %s replicating %s (appendonly yes, appendfsync always)\n", replica, addr)
	}
	var res [2]loadResult
	for i, wait := range []int{0, 1} {
		if err := flush(addr); err != nil {
			return nil, err
		}
		fmt.Fprintf(log, "load: signed Twilio webhooks on 1 gateway, Redis at %s with a replica, redis_wait_replicas: %d...\n", addr, wait)
		r, where, err := loadWebhooksRedis(addr, 1, wait, 2008000000+1_000_000*wait, conns, d)
		if err != nil {
			return nil, err
		}
		fmt.Fprintf(log, "  %s\n", where.text)
		res[i] = r
	}
	ratio := res[1].rate() / res[0].rate()
	return [][]string{
		{"load: same, Redis with a replica, no WAIT", fmt.Sprintf("%s, %d non-2xx", res[0].timing(), res[0].errs), "", ""},
		{waitRow + " (1s timeout)", fmt.Sprintf("%s, %d non-2xx", res[1].timing(), res[1].errs), "", ""},
		{"  ratio WAIT / no WAIT", fmt.Sprintf("%.0f%%", 100*ratio), "≥ 70%", met(ratio >= 0.70)},
	}, nil
}

// startReplica starts redis-server in dir replicating primary, and waits
// until its link is up and the first sync done.
func startReplica(primary, dir string) (string, func(), error) {
	host, port, _ := strings.Cut(primary, ":")
	addr, stop, err := startRedisServer(dir, "--replicaof", host, port)
	if err != nil {
		return "", nil, err
	}
	rdb := redis.NewClient(&redis.Options{Addr: addr})
	defer rdb.Close()
	deadline := time.Now().Add(20 * time.Second)
	for {
		info, _ := rdb.Info(context.Background(), "replication").Result()
		if strings.Contains(info, "master_link_status:up") && !strings.Contains(info, "master_sync_in_progress:1") {
			return addr, stop, nil
		}
		if time.Now().After(deadline) {
			stop()
			return "", nil, errors.New("the replica's link to its primary is not up after 20s")
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// connectedReplicas is how many replicas the Redis at addr has connected.
func connectedReplicas(addr string) (int, error) {
	rdb := redis.NewClient(&redis.Options{Addr: addr})
	defer rdb.Close()
	info, err := rdb.Info(context.Background(), "replication").Result()
	if err != nil {
		return 0, err
	}
	for _, line := range strings.Split(info, "\n") {
		if v, ok := strings.CutPrefix(strings.TrimSpace(line), "connected_slaves:"); ok {
			var n int
			_, err := fmt.Sscan(v, &n)
			return n, err
		}
	}
	return 0, errors.New("INFO replication has no connected_slaves")
}

func configSet(addr, key, value string) error {
	rdb := redis.NewClient(&redis.Options{Addr: addr})
	defer rdb.Close()
	return rdb.ConfigSet(context.Background(), key, value).Err()
}
