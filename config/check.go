package config

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"net/url"
	"strconv"
	"strings"
	"unicode"
)

// errAt formats a validation error: "config: line N: key: message", without
// "line N: " when line is 0 (not from a file).
func errAt(line int, key, format string, args ...any) error {
	prefix := "config: "
	if line > 0 {
		prefix = fmt.Sprintf("config: line %d: ", line)
	}
	return fmt.Errorf("%s%s: %s", prefix, key, fmt.Sprintf(format, args...))
}

// lineOf returns the line of key in the file, or of its nearest enclosing
// key ("numbers[0].weight" falls back to "numbers[0]"); 0 when none.
func (c *Config) lineOf(key string) int {
	for {
		if l, ok := c.lines[key]; ok {
			return l
		}
		i := strings.LastIndexAny(key, ".[")
		if i < 0 {
			return 0
		}
		key = key[:i]
	}
}

// duplicateKeys reports API key entries that accept the same bearer token:
// the same key, the same key_sha256, or a key whose SHA-256 is another
// entry's key_sha256. The errors name entries, never the key.
func (c *Config) duplicateKeys() []error {
	var errs []error
	type entry struct {
		key  string
		line int
	}
	first := map[[sha256.Size]byte]entry{}
	for i, k := range c.APIKeys {
		var sum [sha256.Size]byte
		var field string
		entryKey := fmt.Sprintf("api_keys[%d]", i)
		switch {
		case k.Key.IsSet() && k.KeySHA256 == "":
			sum, field = sha256.Sum256([]byte(k.Key.Reveal())), ".key"
		case !k.Key.IsSet() && isHex(k.KeySHA256, 64):
			_, _ = hex.Decode(sum[:], []byte(strings.ToLower(k.KeySHA256)))
			field = ".key_sha256"
		default:
			continue // reported by Validate
		}
		if prev, dup := first[sum]; dup {
			where := prev.key
			if prev.line > 0 {
				where = fmt.Sprintf("%s (line %d)", prev.key, prev.line)
			}
			errs = append(errs, errAt(c.lineOf(entryKey+field), entryKey+field, "the same API key as %s", where))
			continue
		}
		first[sum] = entry{entryKey, c.lineOf(entryKey)}
	}
	return errs
}

// validProxy reports whether s is an IP address or a CIDR, as gin's
// SetTrustedProxies reads them.
func validProxy(s string) bool {
	if strings.Contains(s, "/") {
		_, _, err := net.ParseCIDR(s)
		return err == nil
	}
	return net.ParseIP(s) != nil
}

func isHostPort(s string) bool {
	_, port, err := net.SplitHostPort(s)
	if err != nil {
		return false
	}
	_, err = strconv.ParseUint(port, 10, 16)
	return err == nil
}

// sameAddr reports whether two listen addresses would take the same port:
// the same non-zero port on the same host or where either is a wildcard.
func sameAddr(a, b string) bool {
	ah, ap, err1 := net.SplitHostPort(a)
	bh, bp, err2 := net.SplitHostPort(b)
	if err1 != nil || err2 != nil || ap != bp || ap == "0" {
		return false
	}
	wild := func(h string) bool { return h == "" || h == "0.0.0.0" || h == "::" }
	return ah == bh || wild(ah) || wild(bh)
}

// CheckAPIURL checks a provider's REST API base (api_url): an absolute
// https URL without query or user:password, or http to a loopback address
// (127.0.0.0/8, ::1, localhost) for a local fake, so that the credentials
// of REST calls never travel in clear. The error quotes the URL only when it
// carries no credentials.
func CheckAPIURL(s string) error {
	u, err := url.Parse(s)
	switch {
	case err != nil:
		return errors.New("must be an absolute http(s) URL without query")
	case u.User != nil:
		return errors.New("must not carry user:password (the entry's credential keys authenticate)")
	case u.RawQuery != "" || u.Opaque != "" || u.ForceQuery:
		// A query may carry a credential: the URL is not quoted.
		return errors.New("must be an absolute http(s) URL without query (the entry's credential keys authenticate)")
	case (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || u.Hostname() == "":
		return fmt.Errorf("must be an absolute http(s) URL without query, got %q", s)
	case u.Scheme == "http" && !IsLoopbackHost(u.Hostname()):
		return fmt.Errorf("must be https, or http to a loopback address (127.0.0.0/8, ::1, localhost) only: credentials would travel in clear, got %q", s)
	}
	return nil
}

// IsLoopbackHost reports whether host (a URL's Hostname) is "localhost" or
// a loopback address. Names under .localhost are not: Go's resolver asks DNS
// for them like any other name.
func IsLoopbackHost(host string) bool {
	if strings.EqualFold(host, "localhost") {
		return true
	}
	ip, err := netip.ParseAddr(host)
	return err == nil && ip.Unmap().IsLoopback()
}

// checkRedisPrefix says what is wrong with a redis_prefix: it begins every
// key, so it must be short, printable and without spaces, and without { or
// } (a key's hash tag, which keeps a receiving number's keys in one Redis
// Cluster slot, is the first {...} of its name).
func checkRedisPrefix(p string) error {
	if p == "" || len(p) > 64 {
		return fmt.Errorf("must be 1 to 64 characters, got %d", len(p))
	}
	for _, r := range p {
		if r == '{' || r == '}' || unicode.IsSpace(r) || !unicode.IsPrint(r) {
			return fmt.Errorf("must not contain %q (no braces, spaces or control characters), got %q", r, p)
		}
	}
	return nil
}
