// Package redisstore is the matcher.Store that several `mogate serve`
// replicas share (store: redis): Redis >= 7 (or Valkey) holds every
// session, dedupe record, nonce, budget and event, and is the durability
// point (DESIGN.md §8).
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
	"net/url"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/mogate/mogate/matcher"
)

//go:embed library.lua
var libraryBody string

// libraryName names the library after a hash of its code: Redis functions
// are global to the server, so builds whose library differs load theirs
// beside each other instead of replacing it, and deployments of one build
// (whatever their prefix) share it.
var libraryName, library = buildLibrary(libraryBody)

// buildLibrary prefixes the Lua body with its header: the library name,
// LIB (the functions' name prefix) and the indexes of the tag's keys in
// KEYS, from tagNames.
func buildLibrary(body string) (name, code string) {
	var idx strings.Builder
	for i, n := range tagNames {
		fmt.Fprintf(&idx, "local %s = %d\n", n.lua, i+1)
	}
	sum := sha256.Sum256([]byte(idx.String() + body))
	name = "mogate_" + hex.EncodeToString(sum[:6])
	return name, "#!lua name=" + name + "\nlocal LIB = '" + name + "'\n" + idx.String() + body
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
	// acknowledged writes, or whose CONFIG command is disabled.
	Unsafe bool
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
	log     *slog.Logger
	wake    chan struct{}
	tags    sync.Map // tags this process registered in P:tags
	clk     clock

	mu      sync.Mutex
	waiters map[string][]chan struct{}

	closeOnce sync.Once
	closeErr  error

	serversMu sync.Mutex
	servers   []ServerInfo // what checkConfig read, one per primary
}

// ServerInfo is what Open read from a Redis primary: its address (never
// the URL, which may hold a password), version, and the persistence
// settings it checked, as the server reported them ("" when CONFIG is
// disabled and redis_unsafe accepted that).
type ServerInfo struct {
	Addr     string
	Version  string            // "redis 7.2.4", "valkey 8.0.1"; "" when INFO failed
	Settings map[string]string // appendonly, appendfsync, maxmemory-policy
}

// Servers returns what Open read from each primary, by address.
func (s *Store) Servers() []ServerInfo {
	s.serversMu.Lock()
	defer s.serversMu.Unlock()
	return slices.Clone(s.servers)
}

// noteServer records what checkConfig read from c, with the version INFO
// reports.
func (s *Store) noteServer(ctx context.Context, c *redis.Client, info ServerInfo) {
	if text, err := c.Info(ctx, "server").Result(); err == nil {
		for line := range strings.Lines(text) {
			k, v, _ := strings.Cut(strings.TrimSpace(line), ":")
			switch {
			case k == "valkey_version":
				info.Version = "valkey " + v
			case k == "redis_version" && info.Version == "":
				info.Version = "redis " + v
			}
		}
	}
	s.serversMu.Lock()
	defer s.serversMu.Unlock()
	s.servers = append(s.servers, info)
	slices.SortFunc(s.servers, func(a, b ServerInfo) int { return strings.Compare(a.Addr, b.Addr) })
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
	err := s.forEachPrimary(ctx, s.checkConfig)
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
		s.rdb.Close()
		return nil, err
	}
	go s.listen()
	return s, nil
}

// connect makes the client: one server, or a cluster for several URLs.
// Calls are never retried by the client (a retried function call could
// apply twice) and never outlast the timeout.
func (s *Store) connect() error {
	urls := strings.Split(s.opt.URL, ",")
	first, err := parseURL(urls[0])
	if err != nil {
		return err
	}
	if len(urls) == 1 {
		first.MaxRetries, first.ContextTimeoutEnabled = -1, true
		first.DialTimeout, first.ReadTimeout, first.WriteTimeout, first.PoolTimeout = s.opt.Timeout, s.opt.Timeout, s.opt.Timeout, s.opt.Timeout
		s.rdb = redis.NewClient(first)
		return nil
	}
	co := &redis.ClusterOptions{
		Username: first.Username, Password: first.Password, TLSConfig: first.TLSConfig,
		MaxRetries: -1, MaxRedirects: 3, ContextTimeoutEnabled: true,
		DialTimeout: s.opt.Timeout, ReadTimeout: s.opt.Timeout, WriteTimeout: s.opt.Timeout, PoolTimeout: s.opt.Timeout,
	}
	for _, u := range urls {
		o, err := parseURL(u)
		if err != nil {
			return err
		}
		co.Addrs = append(co.Addrs, o.Addr)
	}
	s.cluster = newClusterClient(co)
	s.rdb = s.cluster
	return nil
}

// parseURL parses one redis:// URL; its error never quotes the URL, which
// may hold a password.
func parseURL(u string) (*redis.Options, error) {
	u = strings.TrimSpace(u)
	o, err := redis.ParseURL(u)
	if err != nil {
		// Say what is wrong in general terms only: go-redis and net/url
		// quote (and escape) the URL, and any part of it may be a password.
		var ue *url.Error
		if errors.As(err, &ue) {
			return nil, errors.New("redisstore: redis_url is not a valid URL (redis://[user:password@]host:port[/db])")
		}
		return nil, errors.New("redisstore: redis_url must be redis://[user:password@]host:port[/db] or rediss://…")
	}
	return o, nil
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

// safeConfig is what DESIGN.md §8 requires of Redis: nothing acknowledged
// is lost on a crash, and nothing is evicted.
var safeConfig = [...][2]string{{"appendonly", "yes"}, {"appendfsync", "always"}, {"maxmemory-policy", "noeviction"}}

func (s *Store) checkConfig(ctx context.Context, c *redis.Client) error {
	seen := ServerInfo{Addr: c.Options().Addr, Settings: map[string]string{}}
	defer s.noteServer(ctx, c, seen)
	for _, kv := range safeConfig {
		got, err := c.ConfigGet(ctx, kv[0]).Result()
		seen.Settings[kv[0]] = got[kv[0]]
		if err != nil {
			if isConnErr(err) {
				return unavailable(err)
			}
			if s.opt.Unsafe {
				s.log.Warn("redis: CONFIG GET failed; persistence settings unchecked (redis_unsafe)", "addr", c.Options().Addr, "err", err)
				return nil
			}
			return fmt.Errorf("redisstore: cannot check %s on %s (CONFIG GET: %v): managed Redis services often disable CONFIG; "+
				"make sure of appendonly yes, appendfsync always and maxmemory-policy noeviction, then set redis_unsafe: true", kv[0], c.Options().Addr, err)
		}
		if v := got[kv[0]]; v != kv[1] {
			if s.opt.Unsafe {
				s.log.Warn("redis: unsafe setting accepted (redis_unsafe): acknowledged writes may be lost", "addr", c.Options().Addr, "setting", kv[0], "value", v)
				continue
			}
			return fmt.Errorf("redisstore: %s has %s %q; mogate needs %s %s (or redis_unsafe: true to accept losing acknowledged writes)",
				c.Options().Addr, kv[0], v, kv[0], kv[1])
		}
	}
	return nil
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

// call runs the library's function fn ("create", "ingest", ...) with a
// deadline; a function missing after a restart or failover is loaded again
// and the call made once more.
func (s *Store) call(ctx context.Context, fn string, keys []string, args ...any) (any, error) {
	fn = libraryName + "_" + fn
	ctx, cancel := context.WithTimeout(ctx, s.opt.Timeout)
	defer cancel()
	v, err := s.rdb.FCall(ctx, fn, keys, args...).Result()
	if err != nil && strings.Contains(err.Error(), "Function not found") {
		s.log.Warn("redis: function library missing; loading it again", "library", libraryName)
		if lerr := s.loadLibrary(ctx); lerr != nil {
			return nil, lerr
		}
		v, err = s.rdb.FCall(ctx, fn, keys, args...).Result()
	}
	if err != nil {
		return nil, unavailable(err)
	}
	return v, nil
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

// Err pings Redis: why the store cannot serve now, or nil.
func (s *Store) Err(ctx context.Context) error {
	ctx, cancel := s.timeout(ctx)
	defer cancel()
	if err := s.rdb.Ping(ctx).Err(); err != nil {
		return unavailable(err)
	}
	return nil
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
