// Package redisstore is the matcher.Store that several `mogate serve`
// replicas share (store: redis): Redis >= 7 (or Valkey) holds every
// session, dedupe record, nonce, budget and event, and is the durability
// point (docs/high-availability.md).
//
// Every state change is one call of a function of the library in
// library.lua (FUNCTION LOAD at Open, again when a call finds it missing
// after a restart or failover), with every key it touches passed in KEYS.
// keys.go describes the key layout: every key begins with Options.Prefix,
// and a receiving number's keys share a hash tag, so the layout runs
// unchanged on Redis Cluster.
package redisstore

import (
	"context"
	"crypto/sha256"
	_ "embed"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/mogate/mogate/matcher"
	"github.com/mogate/mogate/matcher/redisstore/redisurl"
)

//go:embed library.lua
var libraryBody string

// libraryName names the library after a hash of its code: Redis functions
// are global to the server, so builds whose library differs load theirs
// beside each other instead of replacing it, and deployments of one build
// (whatever their prefix) share it.
var libraryName, library = buildLibrary(libraryBody)

// buildLibrary prefixes the Lua body with its header: the library name,
// LIB (the functions' name prefix) and the positions of the functions'
// keys in KEYS, from libFuncs.
func buildLibrary(body string) (name, code string) {
	idx := luaKeyHeader(libFuncs...)
	sum := sha256.Sum256([]byte(idx + body))
	name = "mogate_" + hex.EncodeToString(sum[:6])
	return name, "#!lua name=" + name + "\nlocal LIB = '" + name + "'\n" + idx + body
}

// Options configure Open.
type Options struct {
	// Prefix begins every key and channel name (redis_prefix); "mogate"
	// when empty. Deployments sharing one Redis need one each.
	Prefix string
	// URL is redis://[user:password@]host:port[/db] (rediss:// for TLS);
	// several comma-separated URLs are the seed nodes of a Redis Cluster.
	URL string
	// Now is the local clock, time.Now when nil. Timestamps and expiry
	// decisions follow Redis's TIME instead: Now corrected by the offset
	// Open measures, and Run every 10 s (see Store.Now).
	Now func() time.Time
	// LocalClock uses Now as is, uncorrected: for tests that move a fake
	// clock.
	LocalClock  bool
	MaxAttempts int           // default for sessions; 3 when 0
	CodeLength  int           // digits of generated codes; 6 when 0
	Retention   time.Duration // finished sessions, dedupe records and nonces; 24h when 0
	// CaptureGuessesPerHour bounds the capture guesses of a sender on one
	// receiving number; 0: unlimited.
	CaptureGuessesPerHour int
	// UnmatchedPerSenderPerHour, when set, keeps a sender that sent this
	// many unmatched messages an hour to one number away from capture
	// sessions (as IngestOptions.NoCapture would); 0: off.
	UnmatchedPerSenderPerHour int
	// Unsafe accepts a Redis whose persistence settings can lose
	// acknowledged writes, or whose CONFIG command is disabled, and
	// Sentinel or Cluster without WaitReplicas.
	Unsafe bool
	// WaitReplicas, when set, makes every write wait until this many
	// replicas have it (WAIT, in the write's round trip); a write they do
	// not acknowledge within WaitTimeout fails as unavailable (it may
	// stand). Sentinel and Cluster need it unless Unsafe.
	WaitReplicas int
	// WaitTimeout bounds each WAIT; 200ms when 0.
	WaitTimeout time.Duration
	// WaitAOF waits with WAITAOF 1 WaitReplicas instead: the write is
	// fsync'd on the primary and WaitReplicas replicas. Open refuses it on
	// a primary without WAITAOF (Redis < 7.2).
	WaitAOF bool
	// Timeout bounds every call to Redis; 5s when 0.
	Timeout time.Duration
	// Numbers are the pool's receiving numbers: their tags are listed in
	// P:tags at Open and every minute, so a quiet number's sessions
	// and events are swept and claimed even if a failover lost the entry.
	Numbers []string
	Logger  *slog.Logger
}

// Store is a matcher.Store in Redis. Its methods are safe for concurrent use.
type Store struct {
	opt     Options
	k       keyspace
	rdb     redis.UniversalClient
	cluster *redis.ClusterClient // nil for one server
	ps      *redis.PubSub
	pipe    *autoPipe // one server or Sentinel's primary: calls are sent in batches
	log     *slog.Logger
	wake    chan struct{}
	tags    sync.Map // tags this process registered in P:tags
	// tagKeys holds the tagKeys of each tag this process registered
	// (register): calls on the tags it writes to name no key per call.
	tagKeys sync.Map
	clk     clock

	mu      sync.Mutex
	waiters map[string][]chan struct{}

	kind     redisurl.Kind
	nodeOpt  *redis.Options // credentials and timeouts of a node client
	readonly atomic.Int64   // unix ns of a READONLY answer to a write; 0 after a write succeeds

	closeOnce sync.Once
	closeErr  error

	serversMu sync.Mutex
	servers   []ServerInfo // what the last settings check read, one per node
}

var _ matcher.Store = (*Store)(nil)

// Open connects to Redis, refuses unsafe persistence settings (unless
// Options.Unsafe), loads the function library and subscribes to wakeups.
func Open(ctx context.Context, o Options) (*Store, error) {
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.MaxAttempts == 0 {
		o.MaxAttempts = 3
	}
	if o.CodeLength == 0 {
		o.CodeLength = 6
	}
	if o.Retention == 0 {
		o.Retention = 24 * time.Hour
	}
	if o.Timeout == 0 {
		o.Timeout = 5 * time.Second
	}
	if o.WaitTimeout == 0 {
		o.WaitTimeout = 200 * time.Millisecond
	}
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	if o.Prefix == "" {
		o.Prefix = DefaultPrefix
	}
	if err := CheckPrefix(o.Prefix); err != nil {
		return nil, fmt.Errorf("redisstore: redis_prefix %w", err)
	}
	s := &Store{opt: o, k: keyspace{o.Prefix}, log: o.Logger, wake: make(chan struct{}, 1), waiters: map[string][]chan struct{}{}}
	s.clk.local, s.opt.Now = o.Now, s.Now
	if err := s.connect(); err != nil {
		return nil, err
	}
	if c, ok := s.rdb.(*redis.Client); ok {
		// One server (or Sentinel's primary): calls can share round
		// trips, and when writes wait, a WAIT.
		s.pipe = &autoPipe{c: c, timeout: o.Timeout}
		if s.waiting() {
			s.pipe.waitCmd, s.pipe.waited = s.waitCmd, s.waited
		}
	}
	if s.kind != redisurl.Single && o.WaitReplicas == 0 && !o.Unsafe {
		s.rdb.Close()
		return nil, fmt.Errorf("redisstore: with %s, a failover loses the writes its replicas lack: set redis_wait_replicas "+
			"(1 or more), or redis_unsafe: true to accept that", map[redisurl.Kind]string{redisurl.Sentinel: "Sentinel", redisurl.Cluster: "Redis Cluster"}[s.kind])
	}
	err := s.checkNodes(ctx)
	if err != nil && o.Unsafe && !errors.Is(err, matcher.ErrUnavailable) {
		err = nil // logged by checkNodes
	}
	if err == nil {
		err = s.checkWaitAOF()
	}
	if err == nil {
		err = s.syncClock(ctx)
	}
	if err == nil {
		err = s.loadLibrary(ctx)
	}
	if err == nil {
		err = s.subscribe(ctx)
	}
	if err == nil {
		err = s.registerNumbers(ctx)
	}
	if err != nil {
		if s.ps != nil {
			s.ps.Close()
		}
		s.rdb.Close()
		return nil, err
	}
	go s.listen()
	return s, nil
}

// forEachPrimary runs fn on the server, or on every primary of the cluster.
func (s *Store) forEachPrimary(ctx context.Context, fn func(context.Context, *redis.Client) error) error {
	ctx, cancel := context.WithTimeout(ctx, s.opt.Timeout)
	defer cancel()
	if s.cluster != nil {
		return s.cluster.ForEachMaster(ctx, fn)
	}
	return fn(ctx, s.rdb.(*redis.Client))
}

// loadLibrary loads (or replaces) the function library on every primary.
func (s *Store) loadLibrary(ctx context.Context) error {
	err := s.forEachPrimary(ctx, func(ctx context.Context, c *redis.Client) error {
		return c.FunctionLoadReplace(ctx, library).Err()
	})
	if err != nil {
		return unavailable(fmt.Errorf("FUNCTION LOAD %s: %w", libraryName, err))
	}
	return nil
}

// call runs the library's function fn ("create", "ingest", ...) on the
// keys libFuncs gives it, named by a, with a deadline: on one server
// (or Sentinel's primary), in a batch with the calls made at once, the
// batch followed by one WAIT when writes wait for replicas (autoPipe); on
// Cluster alone, followed by WAIT when writes wait (write). A function
// missing after a restart or failover is loaded again and the call made
// once more.
func (s *Store) call(ctx context.Context, fn string, a keyArgs, args ...any) (any, error) {
	f, ok := libFuncByName[fn]
	if !ok {
		return nil, fmt.Errorf("redisstore: no library function %s", fn)
	}
	var tk tagKeys
	if f.tag {
		if v, ok := s.tagKeys.Load(a.tag); ok {
			tk = v.(tagKeys)
		}
	}
	argv, first, err := s.k.fcallArgs(f, libFuncNames[fn], tk, a, args)
	if err != nil {
		return nil, err
	}
	var cmd *redis.Cmd
	run := func() error {
		if s.pipe != nil {
			cmd = redis.NewCmd(ctx, argv...)
			return s.pipe.do(ctx, cmd) // bounded by the timeout
		}
		ctx, cancel := s.timeout(ctx)
		defer cancel()
		return s.write(ctx, first, func(c redis.Cmdable) {
			// FCall would build and box the key list again: the call
			// is sent as built, its first key telling a Cluster
			// client the slot.
			cmd = redis.NewCmd(ctx, argv...)
			if first != "" {
				cmd.SetFirstKeyPos(3)
			}
			_ = c.(processor).Process(ctx, cmd)
		})
	}
	werr := run()
	v, err := cmd.Result()
	if err != nil && strings.Contains(err.Error(), "Function not found") {
		s.log.Warn("redis: function library missing; loading it again", "library", libraryName)
		if lerr := s.loadLibrary(ctx); lerr != nil {
			return nil, lerr
		}
		werr = run()
		v, err = cmd.Result()
	}
	if err = s.written(ctx, err, werr); err != nil {
		return nil, err
	}
	return v, nil
}

// processor is what every client, node and pipeline that write hands fn
// can do: queue or send one command.
type processor interface {
	Process(ctx context.Context, cmd redis.Cmder) error
}

// libFuncNames are the full names of libFuncs in this build's library.
var libFuncNames = func() map[string]any {
	m := make(map[string]any, len(libFuncs))
	for _, f := range libFuncs {
		m[f.name] = libraryName + "_" + f.name
	}
	return m
}()

// written is the outcome of a write: its own error (err) first, then the
// WAIT's (werr). A READONLY answer (the node written to is a replica now)
// makes Err fail until a write succeeds; on Cluster, a redirect reloads the
// slot map.
func (s *Store) written(ctx context.Context, err, werr error) error {
	switch {
	case err != nil && redis.HasErrorPrefix(err, "READONLY"):
		s.readonly.Store(time.Now().UnixNano())
		if s.cluster != nil {
			s.cluster.ReloadState(ctx)
		}
	case err != nil && s.cluster != nil && s.waiting() &&
		(redis.HasErrorPrefix(err, "MOVED") || redis.HasErrorPrefix(err, "ASK") || isConnErr(err)):
		// Writes that wait go to the node of the slot map directly, so
		// the cluster client does not follow redirects for them.
		s.cluster.ReloadState(ctx)
	case err == nil:
		s.readonly.Store(0)
	}
	if err != nil {
		return unavailable(err)
	}
	return werr
}

// timeout bounds a plain command.
func (s *Store) timeout(ctx context.Context) (context.Context, context.CancelFunc) {
	return context.WithTimeout(ctx, s.opt.Timeout)
}

// unavailable wraps a Redis error: the caller answers 503.
func unavailable(err error) error {
	if errors.Is(err, matcher.ErrUnavailable) {
		return err
	}
	return fmt.Errorf("%w: redis: %w", matcher.ErrUnavailable, err)
}

func isConnErr(err error) bool {
	var re redis.Error
	return !errors.As(err, &re) || strings.HasPrefix(err.Error(), "LOADING") || strings.HasPrefix(err.Error(), "CLUSTERDOWN")
}

// Err is why the store cannot serve now, or nil: Redis does not answer,
// the node written to is not a primary (ROLE; on Cluster, no node
// answers), or a write was answered READONLY lately and none succeeded
// since.
func (s *Store) Err(ctx context.Context) error {
	ctx, cancel := s.timeout(ctx)
	defer cancel()
	role := func(ctx context.Context, c *redis.Client) error {
		v, err := c.Do(ctx, "role").Slice()
		if err != nil {
			return unavailable(err)
		}
		if len(v) == 0 || v[0] != "master" {
			return unavailable(fmt.Errorf("%s is not a primary (ROLE %v)", nodeName(ctx, s, c), v))
		}
		return nil
	}
	var err error
	if s.cluster != nil {
		// Any node answering will do: one primary down does not make the
		// other slots unavailable. A stale slot map shows as READONLY.
		if err = s.rdb.Ping(ctx).Err(); err != nil {
			err = unavailable(err)
		}
	} else {
		err = role(ctx, s.rdb.(*redis.Client))
	}
	if at := s.readonly.Load(); err == nil && at != 0 && time.Since(time.Unix(0, at)) < readonlyFor {
		err = unavailable(errors.New("writes are answered READONLY (not a primary)"))
	}
	return err
}

// readonlyFor is how long a READONLY answer to a write makes Err fail
// when no write succeeds since (a replica out of rotation makes none).
const readonlyFor = 10 * time.Second

// nodeName is the address of the node c reaches.
func nodeName(ctx context.Context, s *Store, c *redis.Client) string {
	if s.kind == redisurl.Sentinel {
		return localAddr(ctx, c)
	}
	return c.Options().Addr
}

// Close stops the wakeups and closes the connections; closing again does
// nothing.
func (s *Store) Close() error {
	s.closeOnce.Do(func() {
		if s.ps != nil {
			_ = s.ps.Close()
		}
		s.closeErr = s.rdb.Close()
	})
	return s.closeErr
}
