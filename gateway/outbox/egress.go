package outbox

import (
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"syscall"
	"time"
)

// Events go to URLs that API clients choose (callback_url), so every
// delivery is a request an outsider steers. The egress rules (docs/security.md)
// keep it from reaching anything but the public internet: https only; the
// address checked after name resolution, on the socket about to connect, so
// neither a DNS answer nor a rebinding between two lookups can point it
// inward; no redirects; no proxy from the environment (a proxy would connect
// on our behalf and the address check would see only the proxy).
// events.allow_private_destinations lifts the scheme and address rules, for
// local testing.

// The errors keep the "gateway:" prefix they had before the outbox had its
// own package: they appear in logs, which a refactor leaves alone.
var (
	// errNotPublic is a connection refused because its address is not public.
	errNotPublic = errors.New("gateway: not a public address")
	// errRefusedDestination is a destination URL events may never go to
	// under the current configuration; retrying cannot help.
	errRefusedDestination = errors.New("gateway: destination not allowed")
)

// denied are the non-public IPv4 ranges (IANA special-purpose registry) and
// the IPv6 ranges inside global unicast 2000::/3 that are not public.
// IPv6 outside 2000::/3 (loopback, unspecified, IPv4-compatible ::/96,
// discard 100::/64, ULA fc00::/7, link-local fe80::/10, site-local,
// multicast ff00::/8, ...) is denied as a whole.
var denied = []netip.Prefix{
	netip.MustParsePrefix("0.0.0.0/8"),       // "this network", unspecified
	netip.MustParsePrefix("10.0.0.0/8"),      // private
	netip.MustParsePrefix("100.64.0.0/10"),   // carrier-grade NAT
	netip.MustParsePrefix("127.0.0.0/8"),     // loopback
	netip.MustParsePrefix("169.254.0.0/16"),  // link-local, cloud metadata
	netip.MustParsePrefix("172.16.0.0/12"),   // private
	netip.MustParsePrefix("192.0.0.0/24"),    // IETF protocol assignments
	netip.MustParsePrefix("192.0.2.0/24"),    // documentation
	netip.MustParsePrefix("192.88.99.0/24"),  // 6to4 relay anycast
	netip.MustParsePrefix("192.168.0.0/16"),  // private
	netip.MustParsePrefix("198.18.0.0/15"),   // benchmarking
	netip.MustParsePrefix("198.51.100.0/24"), // documentation
	netip.MustParsePrefix("203.0.113.0/24"),  // documentation
	netip.MustParsePrefix("224.0.0.0/4"),     // multicast
	netip.MustParsePrefix("240.0.0.0/4"),     // reserved, broadcast
	netip.MustParsePrefix("2001::/23"),       // IETF protocol assignments, Teredo
	netip.MustParsePrefix("2001:db8::/32"),   // documentation
	netip.MustParsePrefix("2002::/16"),       // 6to4: embeds any IPv4 address
	netip.MustParsePrefix("3fff::/20"),       // documentation
}

var (
	globalUnicast6 = netip.MustParsePrefix("2000::/3")
	// nat64 is the well-known NAT64 prefix: a DNS64 resolver maps an IPv4
	// address into it, so it is judged by the IPv4 address it carries.
	nat64 = netip.MustParsePrefix("64:ff9b::/96")
)

// publicAddr reports whether events may go to ip when private destinations
// are not allowed. IPv4-mapped and NAT64 addresses are judged by the IPv4
// address they carry.
func publicAddr(ip netip.Addr) bool {
	ip = ip.WithZone("")
	if ip.Is4In6() {
		ip = ip.Unmap()
	}
	if ip.Is6() && nat64.Contains(ip) {
		b := ip.As16()
		ip = netip.AddrFrom4([4]byte(b[12:]))
	}
	if !ip.IsValid() || ip.Is6() && !globalUnicast6.Contains(ip) {
		return false
	}
	for _, p := range denied {
		if p.Contains(ip) {
			return false
		}
	}
	return true
}

// refuseNotPublic is a net.Dialer Control function: it runs on every
// connection attempt with the resolved address, before connecting.
func refuseNotPublic(_, address string, _ syscall.RawConn) error {
	ap, err := netip.ParseAddrPort(address)
	if err != nil || !publicAddr(ap.Addr()) {
		return fmt.Errorf("%w: %s", errNotPublic, address)
	}
	return nil
}

// newEgressClient returns the client events are posted with. It must stay
// the only way events leave: it refuses non-public addresses at connect time
// (unless allowPrivate), follows no redirect (a 3xx is the answer, and a
// failed attempt) and uses no proxy. Callers bound each request with a
// context deadline. It sets no MaxConnsPerHost: two API keys' destinations
// on one host must not queue for each other's connections; the outbox
// bounds concurrency itself.
func newEgressClient(allowPrivate bool) *http.Client {
	d := &net.Dialer{Timeout: 10 * time.Second, KeepAlive: 30 * time.Second}
	if !allowPrivate {
		d.Control = refuseNotPublic
	}
	return &http.Client{
		Transport: &http.Transport{
			Proxy:                  nil,
			DialContext:            d.DialContext,
			ForceAttemptHTTP2:      true,
			TLSHandshakeTimeout:    10 * time.Second,
			MaxIdleConnsPerHost:    4,
			IdleConnTimeout:        90 * time.Second,
			MaxResponseHeaderBytes: 64 << 10,
		},
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
}

// checkDestination refuses a URL events may not go to: not absolute
// http(s), or http while private destinations are not allowed. It runs at
// delivery time because a callback_url is stored with its session and may
// predate the configuration in force.
func checkDestination(dest string, allowPrivate bool) error {
	u, err := url.Parse(dest)
	switch {
	case err != nil || u.Host == "" || (u.Scheme != "https" && u.Scheme != "http"):
		return fmt.Errorf("%w: not an absolute http(s) URL", errRefusedDestination)
	case u.Scheme == "http" && !allowPrivate:
		return fmt.Errorf("%w: http needs events.allow_private_destinations; use https", errRefusedDestination)
	}
	return nil
}
