package redistest

import (
	"context"
	"fmt"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
)

// StartFailoverCluster starts a Redis Cluster of primaries with replicas
// replicas each (redis-cli --cluster create --cluster-replicas), whose
// nodes declare a silent node failed after nodeTimeout, so a replica takes
// over a killed primary's slots about two node timeouts after the kill.
// Extra arguments go to every node. It returns when every node sees the
// cluster ok and every replica's link to its primary is up; Servers lists
// every node.
func StartFailoverCluster(t testing.TB, primaries, replicas int, nodeTimeout time.Duration, extra ...string) *Cluster {
	t.Helper()
	cli := binary(t, "redis-cli")
	c := &Cluster{}
	var addrs []string
	for range primaries * (1 + replicas) {
		s := Start(t, append([]string{"--cluster-enabled", "yes", "--cluster-config-file", "nodes.conf",
			"--cluster-node-timeout", fmt.Sprint(nodeTimeout.Milliseconds())}, extra...)...)
		c.Servers = append(c.Servers, s)
		addrs = append(addrs, s.Addr())
	}
	args := append([]string{"--cluster", "create"}, addrs...)
	out, err := exec.Command(cli, append(args, "--cluster-replicas", fmt.Sprint(replicas), "--cluster-yes")...).CombinedOutput()
	if err != nil {
		t.Fatalf("redis-cli --cluster create: %v\n%s", err, out)
	}
	deadline := time.Now().Add(30 * time.Second)
	for _, s := range c.Servers {
		rc := redis.NewClient(&redis.Options{Addr: s.Addr()})
		for {
			ctx := context.Background()
			info, _ := rc.ClusterInfo(ctx).Result()
			repl, _ := rc.Info(ctx, "replication").Result()
			nodes, _ := rc.ClusterNodes(ctx).Result()
			ready := strings.Contains(info, "cluster_state:ok") &&
				strings.Contains(info, fmt.Sprintf("cluster_known_nodes:%d\r\n", len(c.Servers))) &&
				// Every node sees every replica as one: until then a node that
				// has not yet taken its REPLICATE reads as a primary.
				countReplicas(nodes) == primaries*replicas &&
				(strings.Contains(repl, "role:master") ||
					strings.Contains(repl, "master_link_status:up") && !strings.Contains(repl, "master_sync_in_progress:1"))
			if ready {
				break
			}
			if time.Now().After(deadline) {
				rc.Close()
				t.Fatalf("cluster node %s not ready:\n%s\n%s", s.Addr(), info, repl)
			}
			time.Sleep(50 * time.Millisecond)
		}
		rc.Close()
	}
	return c
}

// countReplicas counts the replicas listed in a CLUSTER NODES answer.
func countReplicas(nodes string) int {
	n := 0
	for _, line := range strings.Split(nodes, "\n") {
		if f := strings.Fields(line); len(f) > 2 && strings.Contains(f[2], "slave") {
			n++
		}
	}
	return n
}

// Server returns the node listening on addr (host:port), or nil.
func (c *Cluster) Server(addr string) *Server {
	for _, s := range c.Servers {
		if s.Addr() == addr {
			return s
		}
	}
	return nil
}

// SlotOwner returns the node that serves slot as a primary and its
// replicas, as CLUSTER NODES on the first node that answers sees them.
func (c *Cluster) SlotOwner(t testing.TB, slot int) (primary *Server, replicas []*Server) {
	t.Helper()
	for _, s := range c.Servers {
		if s.cmd == nil {
			continue
		}
		rc := redis.NewClient(&redis.Options{Addr: s.Addr()})
		text, err := rc.ClusterNodes(context.Background()).Result()
		rc.Close()
		if err != nil {
			continue
		}
		primary, replicas = slotOwner(c, text, slot)
		if primary != nil {
			return primary, replicas
		}
	}
	t.Fatalf("no node serves slot %d", slot)
	return nil, nil
}

// slotOwner reads CLUSTER NODES: "id addr@bus flags master-id ping pong
// epoch state slot-ranges...".
func slotOwner(c *Cluster, text string, slot int) (*Server, []*Server) {
	type node struct {
		id, addr, master string
		primary          bool
		ranges           []string
	}
	var nodes []node
	for line := range strings.Lines(text) {
		f := strings.Fields(line)
		if len(f) < 8 || strings.Contains(f[2], "fail") {
			continue
		}
		addr, _, _ := strings.Cut(f[1], "@")
		nodes = append(nodes, node{id: f[0], addr: addr, master: f[3], primary: strings.Contains(f[2], "master"), ranges: f[8:]})
	}
	for _, n := range nodes {
		if !n.primary || !inRanges(n.ranges, slot) {
			continue
		}
		var reps []*Server
		for _, r := range nodes {
			if r.master == n.id {
				if s := c.Server(r.addr); s != nil {
					reps = append(reps, s)
				}
			}
		}
		return c.Server(n.addr), reps
	}
	return nil, nil
}

func inRanges(ranges []string, slot int) bool {
	for _, r := range ranges {
		var lo, hi int
		if n, _ := fmt.Sscanf(r, "%d-%d", &lo, &hi); n == 2 && lo <= slot && slot <= hi {
			return true
		}
		if n, _ := fmt.Sscanf(r, "%d", &lo); n == 1 && !strings.Contains(r, "-") && lo == slot {
			return true
		}
	}
	return false
}
