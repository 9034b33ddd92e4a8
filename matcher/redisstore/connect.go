package redisstore

import (
	"cmp"
	"errors"
	"strings"

	"github.com/redis/go-redis/v9"

	"github.com/mogate/mogate/matcher/redisstore/redisurl"
)

// defaultPoolSize is the connections a client keeps per node when
// redis_url sets no pool_size: as many as the concurrent calls of a
// loaded replica (64 in `mogate bench`), since with fewer the calls queue
// for a connection, which costs both the process and Redis more CPU per
// call (docs/performance.md), whereas an idle connection costs Redis
// next to nothing. (On one server or Sentinel's primary, function calls
// share maxLeaders of them, in batches: autoPipe.)
const defaultPoolSize = 64

// connect makes the client: one server, a cluster for several URLs, or
// the primary the Sentinels name (go-redis's failover client asks them
// for the primary's address on every dial and drops its connections when
// they announce a new one, so an old primary that comes back is never
// written to). Calls are never retried by the client (a retried function
// call could apply twice) and never outlast the timeout.
func (s *Store) connect() error {
	u, err := redisurl.Parse(s.opt.URL)
	if err != nil {
		return errors.New("redisstore: " + err.Error())
	}
	s.kind = u.Kind
	t := s.opt.Timeout
	switch u.Kind {
	case redisurl.Sentinel:
		s.rdb = redis.NewFailoverClient(&redis.FailoverOptions{
			MasterName: u.Master, SentinelAddrs: u.Addrs,
			SentinelUsername: u.SentinelUsername, SentinelPassword: u.SentinelPassword,
			Username: u.Username, Password: u.Password, DB: u.DB,
			MaxRetries: -1, ContextTimeoutEnabled: true, PoolSize: defaultPoolSize,
			DialTimeout: t, ReadTimeout: t, WriteTimeout: t, PoolTimeout: t,
		})
		s.nodeOpt = &redis.Options{Username: u.Username, Password: u.Password, DB: u.DB}
	case redisurl.Single:
		o, err := parseURL(u.Raw[0])
		if err != nil {
			return err
		}
		o.MaxRetries, o.ContextTimeoutEnabled = -1, true
		o.DialTimeout, o.ReadTimeout, o.WriteTimeout, o.PoolTimeout = t, t, t, t
		if o.PoolSize == 0 {
			o.PoolSize = defaultPoolSize
		}
		s.rdb = redis.NewClient(o)
		s.nodeOpt = &redis.Options{Username: o.Username, Password: o.Password, DB: o.DB, TLSConfig: o.TLSConfig}
	default:
		first, err := parseURL(u.Raw[0])
		if err != nil {
			return err
		}
		co := &redis.ClusterOptions{
			Username: first.Username, Password: first.Password, TLSConfig: first.TLSConfig,
			MaxRetries: -1, MaxRedirects: 3, ContextTimeoutEnabled: true, PoolSize: cmp.Or(first.PoolSize, defaultPoolSize),
			DialTimeout: t, ReadTimeout: t, WriteTimeout: t, PoolTimeout: t,
		}
		for _, raw := range u.Raw {
			o, err := parseURL(raw)
			if err != nil {
				return err
			}
			co.Addrs = append(co.Addrs, o.Addr)
		}
		s.cluster = newClusterClient(co)
		s.rdb = s.cluster
		s.nodeOpt = &redis.Options{Username: first.Username, Password: first.Password, TLSConfig: first.TLSConfig}
	}
	o := s.nodeOpt
	o.MaxRetries, o.ContextTimeoutEnabled = -1, true
	o.DialTimeout, o.ReadTimeout, o.WriteTimeout, o.PoolTimeout = t, t, t, t
	o.PoolSize = 1
	return nil
}

// parseURL parses one redis:// URL with go-redis's parser (which reads
// its query options); its error never quotes the URL, which may hold a
// password.
func parseURL(u string) (*redis.Options, error) {
	o, err := redis.ParseURL(strings.TrimSpace(u))
	if err != nil {
		// go-redis and net/url quote (and escape) the URL, and any part of
		// it may be a password.
		return nil, errors.New("redisstore: redis_url has an option go-redis does not accept (redis://[user:password@]host:port[/db][?option=value])")
	}
	return o, nil
}

// dialNode is a client of one node (a replica to check), with the data
// nodes' credentials and TLS settings (the server name of the URL's
// host); the caller closes it.
func (s *Store) dialNode(addr string) *redis.Client {
	o := *s.nodeOpt
	o.Addr = addr
	if o.TLSConfig != nil {
		o.TLSConfig = o.TLSConfig.Clone()
	}
	return redis.NewClient(&o)
}
