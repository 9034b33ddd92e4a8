// Package redisurl reads the redis_url setting: one server
// (redis://[user:password@]host:port[/db], rediss:// for TLS), the seed
// nodes of a Redis Cluster (several such URLs, comma-separated), or a
// primary that Sentinels name
// (redis+sentinel://[user:password@]host:port,host:port/MASTER[/db][?sentinel_password=…]).
//
// It has no dependency beyond the standard library, so the configuration
// checks the setting with it before anything connects. Its errors never
// quote the URL, which may hold a password.
package redisurl

import (
	"errors"
	"fmt"
	"net"
	"net/url"
	"strconv"
	"strings"
)

// Kind is the topology a URL names.
type Kind int

const (
	// Single is one server (a lone primary).
	Single Kind = iota
	// Cluster is the seed nodes of a Redis Cluster.
	Cluster
	// Sentinel is the primary that a set of Sentinels name.
	Sentinel
)

func (k Kind) String() string {
	return [...]string{"single", "cluster", "sentinel"}[k]
}

// SentinelScheme begins a Sentinel URL.
const SentinelScheme = "redis+sentinel://"

// URL is a parsed redis_url.
type URL struct {
	Kind Kind
	// Addrs are host:port: the server, the seed nodes or the Sentinels.
	Addrs []string
	// Master is the name the Sentinels know the primary by (Sentinel only).
	Master string
	// DB is the database number (Single and Sentinel).
	DB int
	// Username and Password authenticate to the data nodes.
	Username, Password string
	// SentinelUsername and SentinelPassword authenticate to the Sentinels
	// (the query parameters sentinel_username and sentinel_password).
	SentinelUsername, SentinelPassword string
	// Raw are the comma-separated redis:// URLs (Single and Cluster), for
	// the client's own parser, which reads their query options.
	Raw []string
}

const (
	plainForm    = "redis://[user:password@]host:port[/db] (rediss:// for TLS)"
	sentinelForm = "redis+sentinel://[user:password@]host:26379,host:26379/MASTER[/db][?sentinel_password=…]"
)

// Parse reads a redis_url.
func Parse(s string) (URL, error) {
	s = strings.TrimSpace(s)
	if len(s) >= len(SentinelScheme) && strings.EqualFold(s[:len(SentinelScheme)], SentinelScheme) {
		return parseSentinel(s[len(SentinelScheme):])
	}
	if strings.Contains(s, "+sentinel://") {
		return URL{}, fmt.Errorf("redis_url: only redis+sentinel:// names Sentinels (%s)", sentinelForm)
	}
	u := URL{Kind: Single}
	for part := range strings.SplitSeq(s, ",") {
		part = strings.TrimSpace(part)
		p, err := url.Parse(part)
		if err != nil {
			return URL{}, fmt.Errorf("redis_url: not a valid URL (%s)", plainForm)
		}
		if p.Scheme != "redis" && p.Scheme != "rediss" {
			return URL{}, fmt.Errorf("redis_url: must be %s, several of them (a Cluster) or %s", plainForm, sentinelForm)
		}
		addr, err := hostPort(p.Host, "6379")
		if err != nil {
			return URL{}, err
		}
		u.Addrs = append(u.Addrs, addr)
		u.Raw = append(u.Raw, part)
		if len(u.Raw) == 1 {
			u.Username = p.User.Username()
			u.Password, _ = p.User.Password()
			if u.DB, err = dbOf(strings.TrimPrefix(p.Path, "/")); err != nil {
				return URL{}, err
			}
		}
	}
	if len(u.Addrs) > 1 {
		u.Kind = Cluster
	}
	return u, nil
}

func parseSentinel(rest string) (URL, error) {
	u := URL{Kind: Sentinel}
	end := strings.IndexAny(rest, "/?#")
	if end < 0 {
		end = len(rest)
	}
	authority, tail := rest[:end], rest[end:]
	hosts := authority
	if at := strings.LastIndex(authority, "@"); at >= 0 {
		ui, err := url.Parse("redis://" + authority[:at] + "@x")
		if err != nil || ui.User == nil {
			return URL{}, fmt.Errorf("redis_url: the user and password of a Sentinel URL are not valid (percent-encode them; %s)", sentinelForm)
		}
		u.Username = ui.User.Username()
		u.Password, _ = ui.User.Password()
		hosts = authority[at+1:]
	}
	for h := range strings.SplitSeq(hosts, ",") {
		addr, err := hostPort(strings.TrimSpace(h), "26379")
		if err != nil {
			return URL{}, err
		}
		u.Addrs = append(u.Addrs, addr)
	}
	t, err := url.Parse("redis://x" + tail)
	if err != nil || t.Fragment != "" {
		return URL{}, fmt.Errorf("redis_url: not a valid URL (%s)", sentinelForm)
	}
	path := strings.Split(strings.TrimPrefix(t.Path, "/"), "/")
	if path[0] == "" {
		return URL{}, fmt.Errorf("redis_url: a Sentinel URL needs the master name after the Sentinels (%s)", sentinelForm)
	}
	u.Master = path[0]
	switch len(path) {
	case 1:
	case 2:
		if u.DB, err = dbOf(path[1]); err != nil {
			return URL{}, err
		}
	default:
		return URL{}, fmt.Errorf("redis_url: a Sentinel URL ends with /MASTER or /MASTER/db (%s)", sentinelForm)
	}
	for k, v := range t.Query() {
		switch k {
		case "sentinel_password":
			u.SentinelPassword = v[0]
		case "sentinel_username":
			u.SentinelUsername = v[0]
		default:
			return URL{}, fmt.Errorf("redis_url: unknown parameter %q in a Sentinel URL (known: sentinel_username, sentinel_password)", k)
		}
		if len(v) > 1 {
			return URL{}, fmt.Errorf("redis_url: parameter %q given twice", k)
		}
	}
	return u, nil
}

// hostPort checks host[:port], adding the default port.
func hostPort(h, defPort string) (string, error) {
	if h == "" {
		return "", errors.New("redis_url: a host is missing (an empty entry between commas, or no host:port)")
	}
	host, port, err := net.SplitHostPort(h)
	if err != nil {
		if strings.Contains(err.Error(), "missing port") {
			host, port = strings.Trim(h, "[]"), defPort
		} else {
			return "", errors.New("redis_url: a host is not host:port")
		}
	}
	n, err := strconv.Atoi(port)
	if host == "" || err != nil || n < 1 || n > 65535 || strings.ContainsAny(host, "/@?# ") {
		return "", errors.New("redis_url: a host is not host:port with a port from 1 to 65535")
	}
	return net.JoinHostPort(host, port), nil
}

func dbOf(s string) (int, error) {
	if s == "" {
		return 0, nil
	}
	n, err := strconv.Atoi(s)
	if err != nil || n < 0 {
		return 0, errors.New("redis_url: the database must be a number from 0 (…/db)")
	}
	return n, nil
}
