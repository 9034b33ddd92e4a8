// Package redistest runs private redis-server processes for tests: on a
// spare loopback port, with the AOF (appendfsync always) in t.TempDir(),
// never the shared Redis at 6379. Without redis-server a test is skipped,
// and fails when the CI environment variable is set.
package redistest

import (
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
)

// Server is one redis-server process.
type Server struct {
	t    testing.TB
	Port int
	Dir  string
	args []string
	cmd  *exec.Cmd
}

// binary returns the redis-server path, or skips (fails under CI).
func binary(t testing.TB, name string) string {
	t.Helper()
	p, err := exec.LookPath(name)
	if err != nil {
		if os.Getenv("CI") != "" {
			t.Fatalf("CI is set but %s is missing: %v", name, err)
		}
		t.Skipf("%s not installed: %v", name, err)
	}
	return p
}

// Start starts a server with AOF appendfsync always; extra arguments
// (e.g. "--appendfsync", "everysec") follow and override the defaults.
func Start(t testing.TB, extra ...string) *Server {
	t.Helper()
	bin := binary(t, "redis-server")
	port := sparePort(t)
	dir := t.TempDir()
	args := append([]string{
		"--port", fmt.Sprint(port), "--bind", "127.0.0.1", "--dir", dir, "--save", "",
		"--appendonly", "yes", "--appendfsync", "always", "--maxmemory-policy", "noeviction",
		"--logfile", filepath.Join(dir, "redis.log"), "--daemonize", "no", "--repl-diskless-sync-delay", "0",
	}, extra...)
	s := &Server{t: t, Port: port, Dir: dir, args: append([]string{bin}, args...)}
	s.start()
	t.Cleanup(s.Kill)
	t.Cleanup(s.logOnFailure)
	return s
}

// logOnFailure prints the end of the server's log when the test failed:
// what a Sentinel or a replica decided, and when, explains a failover test.
func (s *Server) logOnFailure() {
	if !s.t.Failed() {
		return
	}
	log, err := os.ReadFile(filepath.Join(s.Dir, "redis.log"))
	if err != nil {
		return
	}
	const keep = 8 << 10
	if len(log) > keep {
		log = log[len(log)-keep:]
	}
	role := "redis-server"
	if s.args[len(s.args)-1] == "--sentinel" {
		role = "sentinel"
	}
	s.t.Logf("the end of the %s log (port %d):\n%s", role, s.Port, log)
}

func sparePort(t testing.TB) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

func (s *Server) start() {
	s.t.Helper()
	s.cmd = exec.Command(s.args[0], s.args[1:]...)
	// Its own process group: Kill takes the children it forks (AOF
	// rewrite, replication snapshot) with it, as a crash of the host would.
	s.cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := s.cmd.Start(); err != nil {
		s.t.Fatalf("redis-server: %v", err)
	}
	c := redis.NewClient(&redis.Options{Addr: s.Addr(), MaxRetries: -1})
	defer c.Close()
	deadline := time.Now().Add(10 * time.Second)
	for {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		err := c.Ping(ctx).Err()
		cancel()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			log, _ := os.ReadFile(filepath.Join(s.Dir, "redis.log"))
			s.t.Fatalf("redis-server on %d did not come up: %v\n%s", s.Port, err, log)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// Addr is host:port.
func (s *Server) Addr() string { return fmt.Sprintf("127.0.0.1:%d", s.Port) }

// URL is the redis:// URL of the server.
func (s *Server) URL() string { return "redis://" + s.Addr() }

// Client returns a client of the server, closed when the test ends.
func (s *Server) Client() *redis.Client {
	c := redis.NewClient(&redis.Options{Addr: s.Addr()})
	s.t.Cleanup(func() { c.Close() })
	return c
}

// Kill kills the server with SIGKILL (a crash) and waits for it.
func (s *Server) Kill() {
	if s.cmd == nil || s.cmd.Process == nil {
		return
	}
	_ = s.cmd.Process.Signal(syscall.SIGCONT) // a stopped process dies too
	pgid := s.cmd.Process.Pid
	_ = syscall.Kill(-pgid, syscall.SIGKILL)
	_ = s.cmd.Process.Kill()
	_ = s.cmd.Wait()
	for i := 0; i < 100 && syscall.Kill(-pgid, 0) == nil; i++ {
		time.Sleep(10 * time.Millisecond) // a forked child still exiting
	}
	s.cmd = nil
}

// Restart starts the server again on the same port and directory: it
// loads its AOF.
func (s *Server) Restart() {
	s.t.Helper()
	s.Kill()
	s.start()
}

// Stop freezes the server (SIGSTOP): connections stay open, nothing answers.
func (s *Server) Stop() { _ = s.cmd.Process.Signal(syscall.SIGSTOP) }

// Cont resumes a frozen server.
func (s *Server) Cont() { _ = s.cmd.Process.Signal(syscall.SIGCONT) }

// Cluster is a Redis Cluster of primaries without replicas.
type Cluster struct {
	Servers []*Server
}

// StartCluster starts n cluster-enabled servers and joins them with
// redis-cli --cluster create.
func StartCluster(t testing.TB, n int) *Cluster {
	t.Helper()
	return StartClusterReplicas(t, n, 0)
}

// StartClusterReplicas starts a cluster of primaries with replicas
// replicas each; Servers lists every node.
func StartClusterReplicas(t testing.TB, primaries, replicas int) *Cluster {
	t.Helper()
	return StartFailoverCluster(t, primaries, replicas, 2*time.Second)
}

// URL is the comma-separated URLs of the nodes.
func (c *Cluster) URL() string {
	var us []string
	for _, s := range c.Servers {
		us = append(us, s.URL())
	}
	return strings.Join(us, ",")
}

// FlushAll empties every node (the function library stays).
func (c *Cluster) FlushAll(t testing.TB) {
	t.Helper()
	for _, s := range c.Servers {
		rc := redis.NewClient(&redis.Options{Addr: s.Addr()})
		err := rc.FlushAll(context.Background()).Err()
		rc.Close()
		if err != nil {
			t.Fatal(err)
		}
	}
}
